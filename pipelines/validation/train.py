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

Every arm trains to its plateau or the cap (:mod:`.plateau`): at step 0 (the untrained model,
which scores as the nearest neighbour does) and every ``eval_every`` steps the model is scored on
training recordings held out from its training (``RunSpec.holdout``): the held-out loss, ties
broken by the decoded exact accuracy at the best penalty of ``settings.penalties``. The run
stops when that score has not improved for ``patience`` steps or at the ``steps`` cap, and the
best checkpoint is kept; its decoding (the jump penalty, and the weight of the baseline's scores
added to the model's, ``settings.baseline_weights``) is then chosen on the held-out recordings
scored whole (the checkpoints' ``holdout_frames`` excerpts cannot tell a penalty of 256 from 4096:
their decoded exact stayed at 0.892 where the whole recordings went from 0.910 to 0.945 on the
real-music set, and the best penalty grows as a model trains and its scores sharpen); only then
is the validation set scored, once, on whole recordings (``eval_frames`` rows per recording, when
set, instead). Nothing is tuned on the validation set.

Instability is watched on every step (:class:`InstabilityWatch`) and the fraction of the training
loop spent waiting for the next batch is measured (the pipe must not be the bottleneck).
"""

from __future__ import annotations

import copy
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
from streams.stages.mels import MelStage

from ..build import build_stages
from ..config import BatchingConfig, Config
from ..model import ModelSize, PointerNet, pointer_loss
from .evaluate import (
    BASELINE_WEIGHTS,
    PENALTY_GRID,
    model_parts,
    model_scorer,
    score_samples,
    score_weights,
    select_decoding,
    select_penalty,
)
from .perturb import CONDITIONS, make_conditions
from .plateau import Plateau

__all__ = ["FixedWindow", "InRecordings", "InstabilityWatch", "RunSpec", "TrainSettings", "as_float32", "load_samples",
           "recording_of", "train_run", "training_config", "training_pipe"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """What every arm shares.

    ``steps`` is the cap; ``eval_every`` and ``patience`` (in steps) the plateau rule, scored as the
    cross-entropy on ``holdout_frames`` edit rows (centred) of each held-out training recording,
    searched against its whole raw recording (ties broken by the decoded exact accuracy at the best of
    ``penalties``). ``holdout``: the fraction of training recordings held out for it. ``penalties``: the
    grid the jump penalty is chosen from, on the held-out recordings scored whole, jointly with the weight of
    the baseline's scores added for decoding, from ``baseline_weights``. ``context``: raw frames kept either
    side of what a training window points at (the crop's context; more context, more distractors per
    step). The default keeps whole recordings: validation searches a whole recording, and a model
    trained against a few hundred nearby raw frames learned what does not carry over to that search (on
    held-out training recordings, decoded exact fell from 0.892 to 0.80-0.83 with context 100, while
    with whole recordings the held-out loss fell from 4.8 to 3.4 in 100 steps). ``conditions``: the
    validation conditions scored (:data:`.perturb.CONDITIONS`); each costs as much as ``stored``.
    ``eval_frames``: edit rows scored per validation recording (None: the whole edit, the default).
    Whole 15,000-frame edits of 18,000-frame recordings take some 3 s each on one core (scoring and
    decoding), per condition."""

    steps: int = 250
    eval_every: int = 25
    patience: int = 50
    window: int = 200
    context: int = 100_000
    batch_size: int = 4
    learning_rate: float = 5e-3
    model: str = "small"
    device: str = "cpu"
    workers: int = 1
    threads: int = 1
    clip_norm: float = 5.0
    holdout: float = 0.125
    holdout_frames: int | None = 1000
    penalties: tuple[float, ...] = PENALTY_GRID
    baseline_weights: tuple[float, ...] = BASELINE_WEIGHTS
    conditions: tuple[str, ...] = ("stored",)
    chunk_frames: int = 256
    eval_frames: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.context, int) or self.context < 0:
            raise ValueError(f"--context must be an integer >= 0 ({self.context!r} given)")
        for name in ("steps", "eval_every", "patience", "window", "batch_size", "threads", "chunk_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer ({value!r} given)")
        for name in ("eval_frames", "holdout_frames"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer or 0 for whole edits "
                                 f"({value!r} given)")
        if self.eval_every > self.steps:
            raise ValueError(f"--eval-every ({self.eval_every}) cannot exceed --steps ({self.steps})")
        if not self.penalties or any(not p >= 0 for p in self.penalties):
            raise ValueError(f"--penalties must be one or more numbers >= 0 ({self.penalties!r} given)")
        if not self.baseline_weights or any(not w >= 0 for w in self.baseline_weights):
            raise ValueError(f"--baseline-weights must be one or more numbers >= 0 ({self.baseline_weights!r} given)")
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions or "stored" not in self.conditions:
            raise ValueError(f"--conditions must include 'stored' and name only {', '.join(CONDITIONS)} "
                             f"({','.join(self.conditions)!r} given)")
        if not 0 < self.holdout < 1:
            raise ValueError(f"--holdout must be a fraction between 0 and 1 ({self.holdout!r} given)")
        ModelSize.named(self.model)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: ``arm`` name, ``seed``, the arm's ``config`` (its source is the training set),
    ``recordings`` (the training recordings it trains on, by ``meta["recording"]``), ``holdout``
    (the training recordings held out for the plateau rule and the penalty), the ``reference``
    config (mel shards: the held-out recordings are read from them, for audio arms too; its spectral
    augmentations make the ``like_training`` condition), and the validation shards."""

    arm: str
    seed: int
    config: Config
    settings: TrainSettings
    val_urls: str | list[str]
    reference: Config
    recordings: tuple[str, ...] | None = None
    holdout: tuple[str, ...] = ()


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
    """The arm's config as trained: the run's seed, float32 mels (audio shards: float16, the mel
    shards' precision, see :func:`as_float32`), fixed batches of ``batch_size`` (last partial batch
    dropped), crop at ``window`` frames with probability 1 and chunk shuffle in chunks of
    ``window // 4``."""
    aug = config.augmentation
    crop = dataclasses.replace(aug.crop, probability=1.0, min_len=settings.window, max_len=settings.window,
                               context=settings.context)
    chunks = dataclasses.replace(aug.chunk_shuffle, chunk_size=max(1, settings.window // 4))
    mel_dtype = "float16" if config.source.store == "audio" else "float32"
    return dataclasses.replace(
        config, seed=seed, source=dataclasses.replace(config.source, mel_dtype=mel_dtype),
        batching=BatchingConfig(batch_size=settings.batch_size, drop_last=True),
        augmentation=dataclasses.replace(aug, crop=crop, chunk_shuffle=chunks))


def as_float32(sample: Sample) -> Sample:
    """``sample`` with float32 mels. Audio arms make float16 mels, then this: the numbers a mel
    arm reads from its float16 shards, so the two differ by their augmentations only."""
    return sample.replace(raw_mel=sample.raw_mel.float(), edit_mel=sample.edit_mel.float())


def training_pipe(config: Config, settings: TrainSettings, seed: int,
                  recordings: Sequence[str] | None = None) -> Pipe:
    """The pipe one run trains on: the stages of :func:`training_config`, with the recording
    subset filter right after the source and, when crop is off, the :class:`FixedWindow` where
    the mels are first there (after the source; after the mel stage on audio shards, which is
    followed by :func:`as_float32`)."""
    trained = training_config(config, settings, seed)
    stages = build_stages(trained)
    subset = [FilterStage(InRecordings(recordings), name="subset")] if recordings is not None else []
    mels_at = next(i for i, stage in enumerate(stages) if isinstance(stage, MelStage)) if trained.source.store == \
        "audio" else 0
    after_mels = [MapStage(as_float32, name="float32")] if mels_at else []
    if not (trained.augment and trained.augmentation.crop.enabled):
        after_mels.append(MapStage(FixedWindow(settings.window, trained.augmentation.crop.context), name="window"))
    return Pipe([stages[0], *subset, *stages[1:mels_at + 1], *after_mels, *stages[mels_at + 1:]], seed=trained.seed)


def load_samples(urls: str | list[str], recordings: Sequence[str] | None = None) -> list[Sample]:
    """Every sample of ``urls`` (float16 mels kept as stored), sorted by key; only those of
    ``recordings`` (by ``meta["recording"]``) when given."""
    pipe = Pipe.from_shards(urls, seed=0, shuffle_shards=False, mel_dtype="float16")
    keep = None if recordings is None else InRecordings(recordings)
    samples = sorted((s for s in pipe if keep is None or keep(s)), key=lambda s: s.key)
    if not samples:
        raise ValueError(f"no samples in {urls!r}" + ("" if recordings is None else f" of recordings {recordings!r}"))
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
    """Linear warm-up over the first ``min(50, steps // 10)`` steps, then constant: the plateau
    rule, not a schedule, decides when a run ends."""
    warmup = max(1, min(50, settings.steps // 10))
    return settings.learning_rate * min(1.0, (step + 1) / warmup)


def _holdout_metrics(model: PointerNet, device: torch.device, samples: Sequence[Sample],
                     settings: TrainSettings) -> dict[float, dict[str, float]]:
    """A checkpoint's scores: ``holdout_frames`` rows of each held-out recording, weight 0."""
    model.eval()
    try:
        return score_samples(model_scorer(model, device), samples, settings.penalties, rows=settings.holdout_frames,
                             chunk_frames=settings.chunk_frames)
    finally:
        model.train()


def train_run(spec: RunSpec, progress: Callable[[int], None] | None = None) -> dict:
    """Train one arm and seed to its plateau; return its curves, the validation scores of its best
    checkpoint at the chosen penalty, instability flags and timings.

    ``progress(n)`` is called with the number of steps just done.
    """
    settings = spec.settings
    if not spec.holdout:
        raise ValueError(f"arm {spec.arm!r}: no held-out training recordings for the plateau rule")
    torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    holdout = load_samples(spec.reference.source.urls, spec.holdout)  # mel shards, for audio arms too
    model = _init_model(holdout[0].n_mels, settings, spec.seed, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    pipe = training_pipe(spec.config, settings, spec.seed, spec.recordings)
    loader = DataLoader(pipe, batch_size=None, num_workers=settings.workers,
                        persistent_workers=settings.workers > 0, pin_memory=device.type == "cuda")
    watch = InstabilityWatch()
    rule = Plateau(settings.patience)
    best_state = copy.deepcopy(model.state_dict())
    losses: list[float] = []
    curve: list[dict] = []
    wait = eval_time = 0.0
    step = epoch = 0
    stopped = False

    def checkpoint(at: int) -> float:
        """Score the held-out recordings at step ``at``, keep the weights if best; seconds taken."""
        nonlocal best_state
        tick = time.perf_counter()
        by_penalty = _holdout_metrics(model, device, holdout, settings)
        penalty = select_penalty(by_penalty)
        recent = losses[-settings.eval_every:]
        curve.append({"step": at, "train_loss": sum(recent) / len(recent) if recent else None,
                      "penalty": penalty, "holdout": by_penalty[penalty]})
        if rule.update(at, -by_penalty[penalty]["loss"], by_penalty[penalty]["decoded_exact"]):
            best_state = copy.deepcopy(model.state_dict())
        return time.perf_counter() - tick

    started = time.perf_counter()
    eval_time = checkpoint(0)  # the untrained model: the nearest neighbour's scores, the run's floor
    while not stopped:
        pipe.set_epoch(epoch)
        batches = iter(loader)
        yielded = 0
        while not stopped:
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
            if step % settings.eval_every == 0 or step == settings.steps:
                eval_time += checkpoint(step)
                stopped = rule.stopped(step) or step >= settings.steps
        if yielded == 0:
            raise ValueError(f"arm {spec.arm!r}: an epoch gave no batch of {settings.batch_size}; the training set "
                             "(or its subset) has fewer samples than --batch-size")
        epoch += 1
    if progress is not None and step < settings.steps:
        progress(settings.steps - step)  # the bar counts the cap; a run stopped early is done
    train_time = time.perf_counter() - started - eval_time  # training, data waits included
    tick = time.perf_counter()
    model.load_state_dict(best_state)
    model.eval()
    by_weight = score_weights(model_parts(model, device), holdout, settings.baseline_weights, settings.penalties,
                              rows=None, chunk_frames=settings.chunk_frames)  # whole recordings
    weight, penalty = select_decoding(by_weight)
    by_penalty = by_weight[weight]
    scorer = model_scorer(model, device, weight)
    conditions = make_conditions(load_samples(spec.val_urls), spec.reference, settings.conditions)
    final = {name: score_samples(scorer, samples, (penalty,), rows=settings.eval_frames,
                                 chunk_frames=settings.chunk_frames)[penalty]
             for name, samples in conditions.items()}
    final_time = time.perf_counter() - tick
    gaps = [e["holdout"]["loss"] - e["train_loss"] for e in curve[1:]] or [0.0]
    instability = {**watch.report(), "gap_first": gaps[0], "gap_last": gaps[-1],
                   "gap_growing": bool(gaps[-1] - min(gaps) > 0.5)}
    return {"arm": spec.arm, "seed": spec.seed, "recordings": len(spec.recordings) if spec.recordings else None,
            "steps": step, "best_step": rule.best_step, "stopped_by": "plateau" if rule.stopped(step) else "cap",
            "epochs": epoch, "parameters": model.parameter_count(), "loss": losses, "curve": curve,
            "penalty": penalty, "penalty_grid": [[p, by_penalty[p]["decoded_exact"]] for p in settings.penalties],
            "baseline_weight": weight,
            "decoding_grid": [[w, p, by_weight[w][p]["decoded_exact"]] for w in settings.baseline_weights
                              for p in settings.penalties],
            "holdout_best": by_penalty[penalty], "final": final, "instability": instability,
            "learned": {"cosine_scale": model.cosine_scale.item(), "learned_scale": model.learned_scale.item(),
                        "diagonal": model.diagonal.tolist()},
            "data_wait_fraction": wait / train_time if train_time else 0.0,
            "seconds_train": train_time, "seconds_holdout": eval_time, "seconds_final": final_time}
