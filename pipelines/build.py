"""``build_pipe``: the one place a pipeline is assembled from a :class:`~pipelines.config.Config`.

Stage order, and why:

1. source: shards split by rank and worker, samples decoded and checked;
2. crop: first, so every later stage (and the shuffle buffer) works on the smaller sample;
3. shuffle buffer;
4. concatenation (pairing buffer), so pairs mix samples from the shuffled stream;
5. chunk shuffle, after pairing so chunks of both parts can trade places;
6. gain, channel dropout, SpecAugment, noise: spectral stages, on the final frame layout;
7. batching: fixed size or frame budget.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from streams import Pipe, ShardSource, Stage
from streams.checks import FieldError
from streams.schedule import ProbabilitySchedule
from streams.stages.batch import BatchStage
from streams.stages.bucketing import FrameBudgetBatchStage
from streams.stages.channel_dropout import ChannelDropoutStage
from streams.stages.chunk_shuffle import ChunkShuffleStage
from streams.stages.crop import CropStage
from streams.stages.gain import GainStage
from streams.stages.noise import NoiseStage
from streams.stages.pairing import PairStage
from streams.stages.shuffle import ShuffleStage
from streams.stages.spec_augment import SpecAugmentStage

from .errors import ConfigError

if TYPE_CHECKING:  # config.py imports this module (load_config checks by building): types only
    from .config import BatchingConfig, Config

__all__ = ["build_pipe", "build_stages", "check_config"]


def _block_kwargs(block: Any) -> dict[str, Any]:
    return {f.name: getattr(block, f.name) for f in dataclasses.fields(block) if f.name != "enabled"}


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


def build_stages(config: Config) -> list[Stage]:
    """The stages of ``config``'s pipeline, in order (source first)."""
    src = config.source
    stages: list[Stage] = [_make("source", ShardSource, urls=src.urls, shuffle_shards=src.shuffle_shards,
                                 mel_dtype=src.mel_dtype, equal_steps=src.equal_steps, resampled=src.resampled,
                                 epoch_samples=src.epoch_samples, sample_counts=src.sample_counts,
                                 on_error=src.on_error)]
    aug = config.augmentation
    schedule = _make("augmentation.schedule", ProbabilitySchedule,
                     paths={"warmup_epochs": "augmentation.warmup_epochs"}, warmup_epochs=aug.warmup_epochs,
                     kind=aug.schedule.kind, decay_epochs=aug.schedule.decay_epochs,
                     start_factor=aug.schedule.start_factor, end_factor=aug.schedule.end_factor)

    def augmentation(name: str, factory: Any) -> None:
        block = getattr(aug, name)
        if config.augment and block.enabled:
            stages.append(_make(f"augmentation.{name}", factory, schedule=schedule, **_block_kwargs(block)))

    augmentation("crop", CropStage)
    if config.shuffle.buffer_size:
        stages.append(_make("shuffle", ShuffleStage, buffer_size=config.shuffle.buffer_size))
    augmentation("concatenation", PairStage)
    augmentation("chunk_shuffle", ChunkShuffleStage)
    augmentation("gain", GainStage)
    augmentation("channel_dropout", ChannelDropoutStage)
    augmentation("spec_augment", SpecAugmentStage)
    augmentation("noise", NoiseStage)

    stages.extend(_batching_stages(config.batching))
    return stages


def _batching_stages(batching: BatchingConfig) -> list[Stage]:
    """The batching stage (none, fixed-size or frame-budget); the modes are exclusive (the parse checked)."""
    if batching.batch_size is not None:
        return [_make("batching", BatchStage, batch_size=batching.batch_size, drop_last=bool(batching.drop_last))]
    if batching.max_frames is not None:
        options = {name: value for name in ("bucket_buffer", "max_batch_size")
                   if (value := getattr(batching, name)) is not None}
        return [_make("batching", FrameBudgetBatchStage, max_frames=batching.max_frames, **options)]
    return []


def check_config(config: Config) -> Config:
    """``config``, once every stage it describes was built (so each ran its own checks); a bad value
    raises :class:`ConfigError` with the field's config path, before any data flows."""
    build_stages(config)
    return config


def build_pipe(config: Config) -> Pipe:
    """The pipe described by ``config``: use it as ``DataLoader(build_pipe(cfg), batch_size=None)``."""
    return Pipe(build_stages(config), seed=config.seed)
