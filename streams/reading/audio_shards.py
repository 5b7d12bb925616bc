"""The audio-shard source: ``pack-audio --store audio`` shards in, :class:`~streams.audio.sample.AudioSample`s out.

Everything but the members and the decoding is :class:`~streams.reading.source.ShardSource`'s: the
split across ranks and workers, the reading modes, sample counts from ``index.json``, damage detection,
``on_error`` with skip counts, state and resume (records before a resume point are passed over
undecoded; buffered samples are read again by origin). The FLAC is decoded where the source runs, so
in the DataLoader workers; a record that is not yielded (before a resume point, past a budget) is
never decoded. Audio stages, then a mel stage (:class:`~streams.stages.mels.MelStage`), follow.
"""

from __future__ import annotations

from typing import Any

from ..audio.sample import AudioSample
from ..origin import ShardOrigin
from ..pipe import pipe_source
from .audio_decode import decode_audio_record
from .source import ShardSource
from .tar_records import AUDIO_LAYOUT, Record, iter_records

__all__ = ["AudioShardSource"]


@pipe_source("from_audio_shards")
class AudioShardSource(ShardSource):
    """Read audio samples from audio shards (``shards/README.md``, "Audio shards").

    Takes :class:`~streams.reading.source.ShardSource`'s arguments but ``mel_dtype`` and ``check``
    (mels are made later, by the mel stage; every audio sample is checked). Each sample's ``origin``
    is ``("shard", shard_index, record_index)`` as for mel shards.

    >>> Pipe.from_audio_shards("train-{000000..000003}.tar").reedit().mels()  # doctest: +SKIP
    """

    def __init__(self, urls: Any, **options: Any):
        for name in ("mel_dtype", "check"):
            if name in options:
                raise TypeError(f"AudioShardSource takes no {name}: mels are made by the mel stage")
        super().__init__(urls, **options)

    def decode(self, record: Record, shard: int) -> AudioSample:
        """The checked audio sample of ``record``, read from shard number ``shard`` (decoded here)."""
        return decode_audio_record(record).replace(origin=ShardOrigin(shard, record.index).stored())

    def records(self, shard: int):
        """The records of shard number ``shard``, with the audio members read."""
        return iter_records(self.urls[shard], limits=self.limits, layout=AUDIO_LAYOUT)
