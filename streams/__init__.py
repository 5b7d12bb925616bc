"""Streams of pointer-network samples: sources, stages and the pipe that chains them."""

from .audio.sample import AudioSample, check_audio_sample
from .audio.timeline import EditMap, frame_pointers
from .pipe import FilterStage, MapStage, Node, Pipe, PipeIterator, Stage, StreamContext, pipe_method, pipe_source
from .reading.audio_shards import AudioShardSource
from .reading.epoch_plan import batches_per_rank
from .reading.skips import SkipReport
from .reading.source import MemorySource, ShardReadError, ShardSource
from .reading.tar_records import ReadLimits
from .sample import Origin, Sample, SampleError, check_sample
from .schedule import ProbabilitySchedule
from .seeding import derive_seed, order_rng, sample_generator
from .stages.augment import AugmentStage
from .stages.augment_chain import AugmentChain
from .stages.batch import BatchStage
from .stages.bucketing import FrameBudgetBatchStage, cut_frame_budget_batches
from .stages.channel_dropout import ChannelDropoutStage
from .stages.chunk_shuffle import ChunkShuffleStage, shuffle_chunks
from .stages.collate import IGNORE_INDEX, Batch, collate_samples
from .stages.crop import CropStage, crop_sample, cut_sample
from .stages.export import ExportSettings, ExportStage
from .stages.gain import GainStage
from .stages.mels import MelStage, audio_to_mels
from .stages.noise import NoiseStage
from .stages.pairing import PairStage, concatenate_samples
from .stages.reedit import ReeditSettings, ReeditStage
from .stages.shuffle import ShuffleStage
from .stages.spec_augment import SpecAugmentStage
from .stages.stretch import SpeedSettings, SpeedStage, TempoSettings, TempoStage

__all__ = [
    "AudioSample",
    "AudioShardSource",
    "AugmentChain",
    "AugmentStage",
    "Batch",
    "BatchStage",
    "ChannelDropoutStage",
    "ChunkShuffleStage",
    "CropStage",
    "EditMap",
    "ExportSettings",
    "ExportStage",
    "FilterStage",
    "FrameBudgetBatchStage",
    "GainStage",
    "IGNORE_INDEX",
    "MapStage",
    "MelStage",
    "MemorySource",
    "Node",
    "NoiseStage",
    "Origin",
    "PairStage",
    "Pipe",
    "PipeIterator",
    "ProbabilitySchedule",
    "ReadLimits",
    "ReeditSettings",
    "ReeditStage",
    "Sample",
    "SampleError",
    "ShardReadError",
    "ShardSource",
    "ShuffleStage",
    "SkipReport",
    "SpecAugmentStage",
    "SpeedSettings",
    "SpeedStage",
    "Stage",
    "StreamContext",
    "TempoSettings",
    "TempoStage",
    "audio_to_mels",
    "batches_per_rank",
    "check_audio_sample",
    "check_sample",
    "collate_samples",
    "concatenate_samples",
    "crop_sample",
    "cut_frame_budget_batches",
    "cut_sample",
    "derive_seed",
    "frame_pointers",
    "order_rng",
    "pipe_method",
    "pipe_source",
    "sample_generator",
    "shuffle_chunks",
]
