"""Streams of pointer-network samples: sources, stages and the pipe that chains them."""

from .augment import AugmentStage
from .batch import BatchStage
from .bucketing import FrameBudgetBatchStage, cut_frame_budget_batches
from .channel_dropout import ChannelDropoutStage
from .chunk_shuffle import ChunkShuffleStage, shuffle_chunks
from .collate import IGNORE_INDEX, Batch, collate_samples
from .crop import CropStage, crop_sample, cut_sample
from .epoch_plan import batches_per_rank
from .gain import GainStage
from .noise import NoiseStage
from .pairing import PairStage, concatenate_samples
from .pipe import FilterStage, MapStage, Node, Pipe, PipeIterator, Stage, StreamContext, pipe_method
from .sample import Origin, Sample, SampleError, check_sample
from .schedule import ProbabilitySchedule
from .seeding import derive_seed, order_rng, sample_generator
from .shuffle import ShuffleStage
from .skips import SkipReport
from .source import MemorySource, ShardReadError, ShardSource
from .spec_augment import SpecAugmentStage

__all__ = [
    "AugmentStage",
    "Batch",
    "BatchStage",
    "ChannelDropoutStage",
    "ChunkShuffleStage",
    "CropStage",
    "FilterStage",
    "FrameBudgetBatchStage",
    "GainStage",
    "IGNORE_INDEX",
    "MapStage",
    "MemorySource",
    "Node",
    "NoiseStage",
    "Origin",
    "PairStage",
    "Pipe",
    "PipeIterator",
    "ProbabilitySchedule",
    "Sample",
    "SampleError",
    "ShardReadError",
    "ShardSource",
    "ShuffleStage",
    "SkipReport",
    "SpecAugmentStage",
    "Stage",
    "StreamContext",
    "batches_per_rank",
    "check_sample",
    "collate_samples",
    "concatenate_samples",
    "crop_sample",
    "cut_frame_budget_batches",
    "cut_sample",
    "derive_seed",
    "order_rng",
    "pipe_method",
    "sample_generator",
    "shuffle_chunks",
]
