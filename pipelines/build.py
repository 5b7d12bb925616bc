"""``build_pipe``: the one place a pipeline is assembled from a :class:`~pipelines.config.Config`.

Stage order, and why:

1. source: shards split by rank and worker, samples decoded and checked; for audio shards
   (``source.store: "audio"``) the audio stages of ``audio_augmentation`` follow (re-edit, export,
   speed, tempo: before mels, on the audio), then the mel stage (mels with the shard's own settings);
2. crop: first, so every later stage (and the shuffle buffer) works on the smaller sample;
3. shuffle buffer;
4. concatenation (pairing buffer), so pairs mix samples from the shuffled stream;
5. chunk shuffle, after pairing so chunks of both parts can trade places;
6. gain, channel dropout, SpecAugment, noise: spectral stages, on the final frame layout;
7. batching: fixed size or frame budget.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from streams import AudioShardSource, MelStage, Pipe, ShardSource, Stage
from streams.checks import FieldError
from streams.reading.tar_records import ReadLimits
from streams.schedule import ProbabilitySchedule
from streams.stages.batch import BatchStage
from streams.stages.bucketing import FrameBudgetBatchStage
from streams.stages.registry import REGISTRY, settings_values
from streams.stages.shuffle import ShuffleStage

from .config import AUDIO_STAGES, AUGMENTATION_ORDER, BatchingConfig, Config, check_pipe_opt_in, parse_config, pipe_urls
from .errors import ConfigError

__all__ = ["AUGMENTATION_ORDER", "build_audio_stages", "build_augmentations", "build_pipe", "build_stages",
           "check_config", "load_config"]


def _make(block: str, factory: Any, *, paths: dict[str, str] | None = None, **kwargs: Any) -> Stage:
    """``factory(**kwargs)``; a bad argument raises :class:`ConfigError` at its config path: the
    block's field of the argument's name (``augmentation.noise.probability``), or ``paths[name]``
    where the argument lives elsewhere; an error no argument owns names the block."""
    try:
        return factory(**kwargs)
    except FieldError as err:
        path = (paths or {}).get(err.field) or (f"{block}.{err.field}" if err.field in kwargs else block)
        raise ConfigError(path, str(err)) from err
    except ValueError as err:
        raise ConfigError(block, str(err)) from err


def _bytes(field: str, mebibytes: float) -> int:
    """``source.<field>`` in MiB -> bytes; refused unless > 0."""
    if not mebibytes > 0:
        raise ConfigError(f"source.{field}", f"must be > 0 MiB ({mebibytes} given)")
    return max(1, int(mebibytes * 2**20))


def build_stages(config: Config) -> list[Stage]:
    """The stages of ``config``'s pipeline, in order (source first)."""
    src = config.source
    check_pipe_opt_in(src)
    limits = _make("source.stall_timeout", ReadLimits, max_array_bytes=_bytes("max_array_mb", src.max_array_mb),
                   max_meta_bytes=_bytes("max_meta_mb", src.max_meta_mb), stall_timeout=src.stall_timeout)
    options = dict(urls=src.urls, shuffle_shards=src.shuffle_shards, equal_steps=src.equal_steps,
                   resampled=src.resampled, epoch_samples=src.epoch_samples, sample_counts=src.sample_counts,
                   on_error=src.on_error, limits=limits)
    if src.store == "audio":
        stages: list[Stage] = [_make("source", AudioShardSource, **options), *build_audio_stages(config),
                               _make("source", MelStage, paths={"backend": "source.mel_backend"},
                                     backend=src.mel_backend, mel_dtype=src.mel_dtype)]
    else:
        if config.audio_augmentation.enabled:
            raise ConfigError("audio_augmentation.enabled", "audio stages need audio shards: set source.store to "
                                                            "\"audio\" (shards of pack-audio --store audio)")
        stages = [_make("source", ShardSource, mel_dtype=src.mel_dtype, **options)]
    augmentations = build_augmentations(config)
    stages.extend(augmentations.pop(name) for name in BEFORE_SHUFFLE if name in augmentations)
    if config.shuffle.buffer_size:
        stages.append(_make("shuffle", ShuffleStage, buffer_size=config.shuffle.buffer_size))
    stages.extend(augmentations.values())
    stages.extend(_batching_stages(config.batching))
    return stages


BEFORE_SHUFFLE = ("crop",)
"""The augmentations that run before the shuffle buffer."""


def build_augmentations(config: Config) -> dict[str, Stage]:
    """The enabled augmentation stages of ``config`` (each its block's registered stage), by block name,
    in pipe order (none when augmentation is off); no shards needed: ``config.source`` is not used."""
    aug = config.augmentation
    schedule = _make("augmentation.schedule", ProbabilitySchedule, warmup_epochs=aug.warmup_epochs,
                     paths={"warmup_epochs": "augmentation.warmup_epochs"}, **dataclasses.asdict(aug.schedule))
    blocks = {name: getattr(aug, name) for name in AUGMENTATION_ORDER}
    return {name: REGISTRY[name](schedule=schedule, **settings_values(block))
            for name, block in blocks.items() if config.augment and block.enabled}


def build_audio_stages(config: Config) -> list[Stage]:
    """The enabled audio stages of ``config.audio_augmentation``, in :data:`~pipelines.config.AUDIO_STAGES`
    order (none when the block is off). Their settings checked themselves when the config was parsed."""
    audio = config.audio_augmentation
    if not audio.enabled:
        return []
    return [cls(audio.block(name).settings) for name, cls in AUDIO_STAGES.items() if audio.block(name).enabled]


def _batching_stages(batching: BatchingConfig) -> list[Stage]:
    """The batching stage: none, fixed-size or frame-budget; one mode's options given with the other
    are refused, not ignored (checked here, so configs made in code are checked too)."""
    if batching.batch_size is not None and batching.max_frames is not None:
        raise ConfigError("batching", "give batch_size or max_frames, not both")
    budget_only = {"bucket_buffer": batching.bucket_buffer, "max_batch_size": batching.max_batch_size}
    for name, value in budget_only.items():
        if value is not None and batching.max_frames is None:
            raise ConfigError(f"batching.{name}", "applies only to frame-budget batching; set batching.max_frames "
                                                  "or remove it")
    if batching.drop_last is not None and batching.batch_size is None:
        raise ConfigError("batching.drop_last", "applies only to fixed-size batches (batching.batch_size); "
                                                "frame-budget batches keep every sample")
    if batching.batch_size is not None:
        return [_make("batching", BatchStage, batch_size=batching.batch_size, drop_last=bool(batching.drop_last))]
    if batching.max_frames is not None:
        options = {name: value for name, value in budget_only.items() if value is not None}
        return [_make("batching", FrameBudgetBatchStage, max_frames=batching.max_frames, **options)]
    return []


def load_config(source: str | os.PathLike | dict[str, Any]) -> Config:
    """:func:`~pipelines.config.parse_config`, then every stage's own checks (:func:`check_config`);
    raise :class:`ConfigError` naming the field's path either way. No shell command runs here."""
    return check_config(parse_config(source))


def check_config(config: Config) -> Config:
    """``config``, once every stage it describes was built (so each ran its own checks); a bad value
    raises :class:`ConfigError` with the field's config path, before any data flows.

    A ``pipe:`` sample index is not run (so not read) here: equal steps, which needs those counts,
    is left out of this check and checked when the pipe reads."""
    checked = config
    if pipe_urls(config.source.sample_counts):
        checked = dataclasses.replace(config, source=dataclasses.replace(
            config.source, sample_counts=None, equal_steps=None, epoch_samples=None))
    build_stages(checked)
    return config


def build_pipe(config: Config) -> Pipe:
    """The pipe described by ``config``: use it as ``DataLoader(build_pipe(cfg))`` (the pipe's own batches;
    ``batch_size=None`` is the same), or, without a ``batching`` block, ``DataLoader(pipe, batch_size=N)``."""
    return Pipe(build_stages(config), seed=config.seed)
