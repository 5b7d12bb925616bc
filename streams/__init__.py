"""Streams of pointer-network samples: sources, stages and the pipe that chains them."""

from .batch import BatchStage
from .bucketing import FrameBudgetBatchStage, cut_frame_budget_batches
from .collate import IGNORE_INDEX, Batch, collate_samples
from .pairing import PairStage, concatenate_samples
from .pipe import FilterStage, MapStage, Node, Pipe, PipeIterator, Stage, StreamContext, pipe_method
from .sample import Origin, Sample, SampleError, check_sample
from .seeding import derive_seed, order_rng, sample_generator
from .shuffle import ShuffleStage
from .source import MemorySource, ShardReadError, ShardSource

__all__ = [
    "Batch",
    "BatchStage",
    "FilterStage",
    "FrameBudgetBatchStage",
    "IGNORE_INDEX",
    "MapStage",
    "MemorySource",
    "Node",
    "Origin",
    "PairStage",
    "Pipe",
    "PipeIterator",
    "Sample",
    "SampleError",
    "ShardReadError",
    "ShardSource",
    "ShuffleStage",
    "Stage",
    "StreamContext",
    "check_sample",
    "collate_samples",
    "concatenate_samples",
    "cut_frame_budget_batches",
    "derive_seed",
    "order_rng",
    "pipe_method",
    "sample_generator",
]
