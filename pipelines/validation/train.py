"""One training run of a validation arm: the real pipeline, a fixed budget, evaluations on the way.

Every arm of a comparison trains the same way but for its augmentation block (see
:func:`training_config`):

- the pipe is assembled by :func:`pipelines.build.build_stages` from the arm's config (the stages
  ``build_pipe`` would make) and read through a ``DataLoader`` with workers, so what is validated
  is what users train on;
- the run's seed is the pipe's seed and the model's initialisation seed: arms with one seed share
  initialisation, shard order and shuffle order;
- the same number of optimiser steps, the same batch size and the same training window of
  ``window`` edit frames: with the crop augmentation on, crop fires on every sample with
  ``min_len = max_len = window`` (a random position); with it off, a fixed window centred in the
  edit is cut instead (:class:`FixedWindow`), so arms see the same amount of audio per step.
  ``chunk_size`` is scaled to ``window // 4`` so chunk shuffle has chunks to trade inside a window.

Instability is watched on every step (:class:`InstabilityWatch`) and the fraction of the training
loop spent waiting for the next batch is measured (the pipe must not be the bottleneck).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader

from streams import Pipe, Sample
from streams.pipe import FilterStage, MapStage
from streams.stages.crop import crop_bounds, cut_sample

from ..build import build_stages
from ..config import BatchingConfig, Config
from ..model import ModelSize, PointerNet, pointer_loss
from .evaluate import DEFAULT_JUMP_PENALTY, evaluate_samples, model_embedder
from .perturb import CONDITIONS, make_conditions

__all__ = ["FixedWindow", "InRecordings", "InstabilityWatch", "RunSpec", "TrainSettings", "edit_excerpt",
           "load_samples", "recording_of", "train_run", "training_config", "training_pipe"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """What every arm shares. ``evaluations``: how many evaluations over the run. Every one scores
    the ``stored`` condition (the curves); the last 3 also decode cut points; the last one also
    scores the perturbed conditions (each costs as much as the stored one: a seed's score on them
    is that final evaluation, not a mean of 3).
    ``eval_frames``: edit frames scored per validation recording (a centred excerpt, searched
    against the whole raw recording; None: the whole edit). Scoring costs ``T_edit x T_raw``
    per recording, about 60M score cells a second on one core: whole 15,000-frame edits of
    18,000-frame recordings take some 5 s each, per condition and evaluation."""

    steps: int = 100
    window: int = 200
    batch_size: int = 8
    learning_rate: float = 3e-3
    evaluations: int = 3
    model: str = "small"
    device: str = "cpu"
    workers: int = 1
    threads: int = 1
    clip_norm: float = 5.0
    jump_penalty: float = DEFAULT_JUMP_PENALTY
    chunk_frames: int = 1024
    eval_frames: int | None = 500

    def __post_init__(self) -> None:
        for name in ("steps", "window", "batch_size", "evaluations", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer ({value!r} given)")
        if self.eval_frames is not None and (not isinstance(self.eval_frames, int) or self.eval_frames < 1):
            raise ValueError(f"--eval-frames must be a positive integer or 0 for whole edits "
                             f"({self.eval_frames!r} given)")
        if self.evaluations > self.steps:
            raise ValueError(f"--evaluations ({self.evaluations}) cannot exceed --steps ({self.steps})")
        ModelSize.named(self.model)

    def evaluation_steps(self) -> list[int]:
        """Steps after which to evaluate, evenly spread, the last one at ``steps``."""
        return sorted({max(1, round(self.steps * k / self.evaluations)) for k in range(1, self.evaluations + 1)})


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: ``arm`` name, ``seed``, the arm's ``config`` (its source is the training set),
    ``recordings`` (the training subset by ``meta["recording"]``, or None for all), the
    ``reference`` config whose spectral augmentations make the ``like_training`` condition, and
    the validation shards."""

    arm: str
    seed: int
    config: Config
    settings: TrainSettings
    val_urls: str | list[str]
    reference: Config
    recordings: tuple[str, ...] | None = None


class FixedWindow:
    """The training window when crop is off: ``window`` edit frames centred in the edit, raw cut to
    what they point at plus ``context`` (the crop stage's own cut, at a fixed position)."""

    def __init__(self, window: int, context: int):
        self.window, self.context = window, context

    def __call__(self, sample: Sample) -> Sample:
        if sample.edit_frames <= self.window:
            return sample
        start = (sample.edit_frames - self.window) // 2
        return cut_sample(sample, **crop_bounds(sample, start, self.window, self.context))


def recording_of(sample: Sample) -> object:
    """``sample.meta["recording"]``, which the multiplier protocol splits the training set by."""
    if "recording" not in sample.meta:
        raise ValueError(f"sample {sample.key!r} ({sample.url}) has no meta 'recording'; the multiplier "
                         "protocol splits the training set by recording: pack samples with that field")
    return sample.meta["recording"]


class InRecordings:
    """Keep samples whose ``meta["recording"]`` is in ``recordings`` (the multiplier's subsets)."""

    def __init__(self, recordings: Sequence[str]):
        self.recordings = frozenset(recordings)

    def __call__(self, sample: Sample) -> bool:
        return recording_of(sample) in self.recordings


def training_config(config: Config, settings: TrainSettings, seed: int) -> Config:
    """The arm's config as trained: the run's seed, float32 mels, fixed batches of
    ``batch_size`` (last partial batch dropped), crop at ``window`` frames with probability 1 and
    chunk shuffle in chunks of ``window // 4``."""
    aug = config.augmentation
    crop = dataclasses.replace(aug.crop, probability=1.0, min_len=settings.window, max_len=settings.window)
    chunks = dataclasses.replace(aug.chunk_shuffle, chunk_size=max(1, settings.window // 4))
    return dataclasses.replace(
        config, seed=seed, source=dataclasses.replace(config.source, mel_dtype="float32"),
        batching=BatchingConfig(batch_size=settings.batch_size, drop_last=True),
        augmentation=dataclasses.replace(aug, crop=crop, chunk_shuffle=chunks))


def training_pipe(config: Config, settings: TrainSettings, seed: int,
                  recordings: Sequence[str] | None = None) -> Pipe:
    """The pipe one run trains on: the stages of :func:`training_config`, with the recording
    subset filter and, when crop is off, the :class:`FixedWindow` right after the source."""
    trained = training_config(config, settings, seed)
    stages = build_stages(trained)
    early = []
    if recordings is not None:
        early.append(FilterStage(InRecordings(recordings), name="subset"))
    if not (trained.augment and trained.augmentation.crop.enabled):
        early.append(MapStage(FixedWindow(settings.window, trained.augmentation.crop.context), name="window"))
    return Pipe([stages[0], *early, *stages[1:]], seed=trained.seed)


def edit_excerpt(sample: Sample, frames: int | None) -> Sample:
    """``frames`` edit frames centred in the edit, against the *whole* raw recording (the pointer
    search space stays the whole recording); the sample itself when its edit is no longer or
    ``frames`` is None."""
    if frames is None or sample.edit_frames <= frames:
        return sample
    start = (sample.edit_frames - frames) // 2
    return cut_sample(sample, start, frames, 0, sample.raw_frames)


def load_samples(urls: str | list[str], eval_frames: int | None = None) -> list[Sample]:
    """Every sample of ``urls`` (float16 mels kept as stored), sorted by key, each cut to its
    :func:`edit_excerpt` of ``eval_frames`` edit frames."""
    pipe = Pipe.from_shards(urls, seed=0, shuffle_shards=False, mel_dtype="float16")
    samples = sorted((edit_excerpt(s, eval_frames) for s in pipe), key=lambda s: s.key)
    if not samples:
        raise ValueError(f"no samples in {urls!r}")
    return samples


class InstabilityWatch:
    """Flags on the way: non-finite losses or gradients, gradient-norm spikes (above ``10x`` the
    running median of earlier norms), loss spikes (above ``3x`` the median of the last 50
    losses); both spike checks start after ``warmup`` steps."""

    def __init__(self, warmup: int = 20):
        self.warmup = warmup
        self.norms: list[float] = []
        self.losses: list[float] = []
        self.nonfinite_loss = 0
        self.nonfinite_grad = 0
        self.grad_spikes: list[int] = []
        self.loss_spikes: list[int] = []

    def step(self, step: int, loss: float, grad_norm: float) -> bool:
        """Record one step; False when it must be skipped (non-finite loss or gradient)."""
        if not math.isfinite(loss):
            self.nonfinite_loss += 1
            return False
        if not math.isfinite(grad_norm):
            self.nonfinite_grad += 1
            return False
        if len(self.norms) >= self.warmup and grad_norm > 10 * statistics.median(self.norms):
            self.grad_spikes.append(step)
        if len(self.losses) >= self.warmup and loss > 3 * statistics.median(self.losses[-50:]):
            self.loss_spikes.append(step)
        self.norms.append(grad_norm)
        self.losses.append(loss)
        return True

    def report(self) -> dict:
        return {"nonfinite_loss": self.nonfinite_loss, "nonfinite_grad": self.nonfinite_grad,
                "grad_norm_spikes": len(self.grad_spikes), "loss_spikes": len(self.loss_spikes),
                "grad_norm_spike_steps": self.grad_spikes[:10], "loss_spike_steps": self.loss_spikes[:10],
                "grad_norm_median": statistics.median(self.norms) if self.norms else None}


def _init_model(n_mels: int, settings: TrainSettings, seed: int, device: torch.device) -> PointerNet:
    # torch's default initialisers draw from the global generator: fork it so the seed stays local
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = PointerNet(n_mels, ModelSize.named(settings.model))
    return model.to(device)


def _learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to 10% of the peak."""
    warmup = max(1, settings.steps // 20)
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.steps - warmup)
    return settings.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_run(spec: RunSpec, progress: Callable[[int], None] | None = None) -> dict:
    """Train one arm and seed; return its curves, evaluations, instability flags and timings.

    ``progress(n)`` is called with the number of steps just done.
    """
    settings = spec.settings
    torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    conditions = make_conditions(load_samples(spec.val_urls, settings.eval_frames), spec.reference)
    model = _init_model(conditions["stored"][0].n_mels, settings, spec.seed, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    pipe = training_pipe(spec.config, settings, spec.seed, spec.recordings)
    loader = DataLoader(pipe, batch_size=None, num_workers=settings.workers,
                        persistent_workers=settings.workers > 0, pin_memory=device.type == "cuda")
    watch = InstabilityWatch()
    eval_steps = settings.evaluation_steps()
    decoded_steps = set(eval_steps[-3:])
    losses: list[float] = []
    evaluations: list[dict] = []
    wait = eval_time = 0.0
    step = epoch = 0
    started = time.perf_counter()
    while step < settings.steps:
        pipe.set_epoch(epoch)
        batches = iter(loader)
        yielded = 0
        while step < settings.steps:
            tick = time.perf_counter()
            batch = next(batches, None)
            wait += time.perf_counter() - tick
            if batch is None:
                break
            yielded += 1
            batch = batch.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, settings)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                scores = model(batch.raw_mel, batch.raw_mask, batch.edit_mel, batch.edit_mask)
            loss = pointer_loss(scores, batch.pointers)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm))
            if watch.step(step, loss.item(), grad_norm):
                scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            step += 1
            if progress is not None:
                progress(1)
            if step in eval_steps:
                tick = time.perf_counter()
                evaluations.append(_evaluate(model, device, conditions, step, step in decoded_steps,
                                             step == eval_steps[-1], settings, losses))
                eval_time += time.perf_counter() - tick
        if yielded == 0:
            raise ValueError(f"arm {spec.arm!r}: an epoch gave no batch of {settings.batch_size}; the training set "
                             "(or its subset) has fewer samples than --batch-size")
        epoch += 1
    train_time = time.perf_counter() - started - eval_time  # training, data waits included
    gaps = [e["gap"] for e in evaluations]
    instability = {**watch.report(), "gap_first": gaps[0], "gap_last": gaps[-1],
                   "gap_growing": bool(gaps[-1] - min(gaps) > 0.5)}
    return {"arm": spec.arm, "seed": spec.seed, "recordings": len(spec.recordings) if spec.recordings else None,
            "steps": step, "epochs": epoch, "parameters": model.parameter_count(), "loss": losses,
            "evaluations": evaluations, "instability": instability,
            "data_wait_fraction": wait / train_time if train_time else 0.0,
            "seconds_train": train_time, "seconds_eval": eval_time}


def _evaluate(model: PointerNet, device: torch.device, conditions: dict[str, list[Sample]], step: int,
              decode: bool, final: bool, settings: TrainSettings, losses: list[float]) -> dict:
    """One evaluation: ``stored`` always (decoded for cut F1 when ``decode``); the perturbed
    conditions too, decoded, when ``final``."""
    model.eval()
    embedder = model_embedder(model, device)
    names = CONDITIONS if final else ("stored",)
    scored = {name: evaluate_samples(embedder, conditions[name], decode=decode or final,
                                     jump_penalty=settings.jump_penalty, chunk_frames=settings.chunk_frames)
              for name in names}
    model.train()
    recent = losses[-max(1, settings.steps // settings.evaluations):]
    train_loss = sum(recent) / len(recent)
    return {"step": step, "train_loss": train_loss, "gap": scored["stored"]["loss"] - train_loss,
            "conditions": scored}
