"""``python -m pipelines validate``: train every arm of a protocol over seeds, score, write outputs."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import time

import torch

from streams import Pipe

from ..build import load_config
from ..config import AUGMENTATION_ORDER, AudioAugmentationConfig, Config, ConfigError
from ..model import ModelSize
from .baseline import nearest_neighbour_scorer
from .evaluate import score_samples, select_penalty
from .perturb import make_conditions
from .protocols import holdout_split, protocol_arms
from .report import build_results, write_outputs
from .runner import run_specs
from .train import RunSpec, TrainSettings, load_samples, recording_of

__all__ = ["AUDIO_CONFIG", "DEFAULT_CONFIG", "INSTRUMENT_REVISION", "as_run", "audio_recordings", "default_device",
           "load_audio_block", "load_validation_config", "run_baseline", "run_key", "run_validation", "summary_line",
           "training_recordings"]

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "full.json")
AUDIO_CONFIG = os.path.join(os.path.dirname(DEFAULT_CONFIG), "audio.json")
"""Where the audio protocol takes its ``audio_augmentation`` block when the config has none enabled."""


def default_device() -> str:
    """``"cuda"`` when a GPU is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"config {path} cannot be read as JSON: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError("", f"config {path} must hold a JSON object")
    return data


def load_validation_config(path: str | None, train_urls: str | list[str]) -> Config:
    """The config at ``path`` (default: ``pipelines/configs/full.json``) reading ``train_urls`` (mel
    shards: its ``source.store`` and ``audio_augmentation`` are dropped; :func:`load_audio_block`
    reads the latter)."""
    data = _read_json(path or DEFAULT_CONFIG)
    source = {key: value for key, value in data.get("source", {}).items() if key not in ("store", "mel_backend")}
    data = {key: value for key, value in data.items() if key != "audio_augmentation"}
    return load_config({**data, "source": {**source, "urls": train_urls}})


def load_audio_block(path: str | None) -> AudioAugmentationConfig:
    """The ``audio_augmentation`` block of the config at ``path`` when it enables one, else
    :data:`AUDIO_CONFIG`'s: the audio stages of the ``audio`` protocol."""
    for where in ([path] if path else []) + [AUDIO_CONFIG]:
        data = _read_json(where).get("audio_augmentation")
        if data is not None:
            block = AudioAugmentationConfig.from_json(data, "audio_augmentation")
            if block.enabled:
                return block
    raise ValueError(f"{AUDIO_CONFIG} enables no audio stage")


def audio_recordings(urls: str | list[str]) -> list[str]:
    """The distinct ``meta["recording"]`` values of audio shards (each recording is decoded)."""
    return sorted({str(recording_of(sample)) for sample in Pipe.from_audio_shards(urls, seed=0, shuffle_shards=False)})


def training_recordings(urls: str | list[str]) -> list[str]:
    """The distinct ``meta["recording"]`` values of the training shards (mels are read and dropped)."""
    samples = Pipe.from_shards(urls, seed=0, shuffle_shards=False, mel_dtype="float16")
    return sorted({str(recording_of(sample)) for sample in samples})


def run_baseline(config: Config, holdout: tuple[str, ...], val_urls: str | list[str],
                 settings: TrainSettings) -> dict:
    """The nearest neighbour, decoded: its jump penalty chosen from ``settings.penalties`` on the
    held-out training recordings scored whole, then every validation condition scored at that
    penalty, as the trained arms are."""
    held = load_samples(config.source.urls, holdout)
    by_penalty = score_samples(nearest_neighbour_scorer, held, settings.penalties, rows=None,
                               chunk_frames=settings.chunk_frames)
    penalty = select_penalty(by_penalty)
    conditions = make_conditions(load_samples(val_urls), config, settings.conditions)
    scored = {name: score_samples(nearest_neighbour_scorer, samples, (penalty,), rows=settings.eval_frames,
                                  chunk_frames=settings.chunk_frames)[penalty]
              for name, samples in conditions.items()}
    return {**scored["stored"], "penalty": penalty,
            "penalty_grid": [[p, by_penalty[p]["decoded_exact"]] for p in settings.penalties],
            "holdout": by_penalty[penalty], "conditions": scored}


def run_validation(config: Config, val_urls: str | list[str], *, protocol: str = "quick", seeds: int = 3,
                   settings: TrainSettings | None = None, out_dir: str = "validate-out", jobs: int = 1,
                   progress: bool = True, cache_dir: str | None = None,
                   train_audio: str | list[str] | None = None,
                   audio: AudioAugmentationConfig | None = None) -> tuple[dict, dict[str, str]]:
    """Run ``protocol`` (see :mod:`.protocols`); return the results and the written files' paths.

    ``train_audio``: audio shards of the training recordings (``pack-audio --store audio`` of the
    folder ``--train`` was packed from), for the ``audio`` protocol only; they must hold the same
    recordings (by ``meta["recording"]``). ``audio``: its audio stages (default:
    :data:`AUDIO_CONFIG`'s, see :func:`load_audio_block`).

    The training recordings are split once (:func:`.protocols.holdout_split`, the config's seed):
    the held-out ones choose every run's checkpoint and jump penalty and the baseline's penalty;
    the arms train on the rest (the multiplier's subsets are drawn from the rest). The baseline
    is scored in a thread while the runs train.

    ``cache_dir``: keep each run's result there under a hash of what determines it (:func:`run_key`),
    and reuse it: protocols that share arms (``none`` and ``all`` in quick and ablation, ``none`` on
    every recording in multiplier) train them once, and so do configs that differ only in stages an
    arm does not run (``none`` of every variant).
    """
    settings = settings or TrainSettings()
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1 ({seeds!r} given)")
    started = time.perf_counter()
    names = training_recordings(config.source.urls)
    if protocol == "audio" and train_audio is not None:
        audio = audio or load_audio_block(None)
        _check_same_recordings(names, audio_recordings(train_audio), config.source.urls, train_audio)
    recordings, holdout = holdout_split(names, settings.holdout, config.seed)
    arms = protocol_arms(protocol, config, recordings, audio_urls=train_audio, audio=audio)
    seed_list = [config.seed + i for i in range(seeds)]
    specs = [RunSpec(arm.name, seed, arm.config, settings, val_urls, config,
                     tuple(sorted(arm.recordings)) if arm.recordings else recordings, holdout)
             for seed in seed_list for arm in arms]
    cached = {i: _cached(cache_dir, spec) for i, spec in enumerate(specs)} if cache_dir else {}
    missing = [spec for i, spec in enumerate(specs) if cached.get(i) is None]
    store = (lambda spec, run: _store(cache_dir, spec, run)) if cache_dir else None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        baseline = pool.submit(run_baseline, config, holdout, val_urls, settings)
        fresh = iter(run_specs(missing, jobs=jobs, progress=progress, on_result=store))
        runs = [{**(cached.get(i) or next(fresh)), "arm": spec.arm} for i, spec in enumerate(specs)]
        baseline = baseline.result()
    val = load_samples(val_urls)
    context = {"settings": dataclasses.asdict(settings), "seeds": seed_list, "train": config.source.urls,
               "val": val_urls, "val_recordings": len(val), "val_edit_frames": sum(s.edit_frames for s in val),
               "val_raw_frames": sum(s.raw_frames for s in val), "train_recordings": len(recordings),
               "holdout_recordings": list(holdout), "jobs": jobs,
               "runs_trained": len(missing), "runs_from_cache": len(specs) - len(missing),
               "cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "train_audio": train_audio,
               "audio_augmentation": dataclasses.asdict(audio) if train_audio else None,
               "seconds": time.perf_counter() - started}
    results = build_results(protocol, arms, runs, baseline, **context)
    return results, write_outputs(results, out_dir)


def _check_same_recordings(mel: list[str], audio: list[str], mel_urls, audio_urls) -> None:
    if mel != audio:
        only_mel, only_audio = sorted(set(mel) - set(audio)), sorted(set(audio) - set(mel))
        raise ValueError(f"--train-audio {audio_urls!r} must hold the recordings of --train {mel_urls!r} (pack-audio "
                         f"--store audio of the same folder); only in --train: {only_mel[:5]}, only in --train-audio: "
                         f"{only_audio[:5]}")


INSTRUMENT_REVISION = 4
"""Part of every cache key: raised whenever a change to training or scoring changes what a run
gives (2: checkpoints by held-out loss, 7 December 2026; 3: ``small`` became d=32, the learning
rate and step cap their new defaults, the kept checkpoint's penalty chosen on whole held-out
recordings from a wider grid, later that day; 4: the decoder in float32, and the weight of the
baseline's scores added for decoding chosen with the penalty, 7 December 2026, evening), so a
cache made by an earlier instrument is never read as if it were this one's."""


def run_key(spec: RunSpec) -> str:
    """The cache key of a run: a hash of what decides its result (the arm's config as it runs, see
    :func:`as_run`, seed, settings and the model size they name, validation set, recordings, the
    :data:`INSTRUMENT_REVISION`) and of nothing else: not the arm's name, nor the settings of stages
    it does not run, nor the reference config beyond its shards (and its augmentations when
    ``like_training`` is scored). So ``none`` of a variant config (``spec_augment.fill: "mean"``) is
    the ``none`` already trained."""
    reference = (spec.reference.source.urls,
                 as_run(spec.reference) if "like_training" in spec.settings.conditions else None)
    described = repr((INSTRUMENT_REVISION, as_run(spec.config), spec.seed, spec.settings,
                      ModelSize.named(spec.settings.model), spec.val_urls, reference, spec.recordings, spec.holdout))
    return hashlib.sha256(described.encode()).hexdigest()[:24]


def as_run(config: Config) -> Config:
    """``config`` with the blocks of the augmentations it does not run reset to their defaults (and
    the flat switch folded into ``augmentation.enabled``): two configs that train alike compare equal."""
    aug, audio = config.augmentation, config.audio_augmentation
    if config.augment:
        aug = dataclasses.replace(aug, enabled=True, **{
            name: dataclasses.replace(type(getattr(aug, name))(), enabled=False)
            for name in AUGMENTATION_ORDER if not getattr(aug, name).enabled})
    else:
        aug = type(aug)()
    audio = (dataclasses.replace(audio, stages=tuple((name, block) for name, block in audio.stages if block.enabled))
             if audio.enabled else AudioAugmentationConfig())
    return dataclasses.replace(config, augmentation_enabled=None, augmentation=aug, audio_augmentation=audio)


def _cached(cache_dir: str, spec: RunSpec) -> dict | None:
    path = os.path.join(cache_dir, f"{run_key(spec)}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _store(cache_dir: str, spec: RunSpec, run: dict) -> None:
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{run_key(spec)}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(run, f)
    os.replace(path + ".tmp", path)


def summary_line(results: dict, paths: dict[str, str]) -> str:
    """The closing line of the command."""
    verdicts = collections.Counter(c["verdict"] for c in results["comparisons"]
                                   if c["metric"] == "decoded_exact" and c["condition"] == "stored")
    said = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    nn = results["baselines"]["nearest_neighbour"]
    best = max(results["arms"].items(), key=lambda item: item[1]["decoded_exact"]["mean"])
    return (f"validate: protocol {results['protocol']}, {len(results['arms'])} arms x {len(results['seeds'])} seeds "
            f"in {results['seconds']:.0f} s; decoded exact vs reference: {said}; best arm {best[0]} "
            f"{best[1]['decoded_exact']['mean']:.3f} vs nearest neighbour {nn['decoded_exact']:.3f} "
            f"(penalty {nn['penalty']:g}); wrote {', '.join(paths.values())}")

