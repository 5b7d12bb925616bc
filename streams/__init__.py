"""Streams of pointer-network samples: sources, stages and the pipe that chains them."""

from .batch import BatchStage
from .collate import IGNORE_INDEX, Batch, collate_samples
from .pipe import FilterStage, MapStage, Node, Pipe, PipeIterator, Stage, StreamContext, pipe_method
from .sample import Origin, Sample, SampleError, check_sample
from .seeding import derive_seed, order_rng, sample_generator
from .shuffle import ShuffleStage
from .source import MemorySource, ShardReadError, ShardSource

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "BatchStage",
    "FilterStage",
    "MapStage",
    "MemorySource",
    "Node",
    "Origin",
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
    "derive_seed",
    "order_rng",
    "pipe_method",
    "sample_generator",
]
