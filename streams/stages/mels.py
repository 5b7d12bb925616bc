"""The mel stage: :class:`~streams.audio.sample.AudioSample` -> :class:`~streams.sample.Sample`, mels made on the fly.

Log-mels of ``raw`` and ``edit`` with the sample's own mel settings (``sample.mel``: for audio shards,
the ``mel.json`` stored with the recording), so they are the numbers ``pack-audio`` stores in mel shards
of the same recordings; pointers from the sample's edit map by the pointer rule
(:func:`streams.audio.timeline.frame_pointers`), so audio stages that re-edit or stretch keep them true.
After this stage every mel-domain stage (crop, pairing, SpecAugment...) applies as to mel shards.

Two backends give the same numbers within :data:`streams.audio.stft_mel.TOLERANCE_DB`:
``"librosa"`` (:func:`streams.audio.mel.log_mel`, ``pack-audio``'s own, the default) and ``"torch"``
(:func:`streams.audio.stft_mel.torch_log_mel`: ``torch.stft`` and librosa's filterbank, built once).
``python -m pipelines bench --parts audio`` times both: on one core the torch backend takes 10-20% less
CPU per sample (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..audio.sample import AudioSample
from ..audio.timeline import frame_pointers
from ..checks import check_choice
from ..origin import Origin
from ..pipe import Node, Stage, pipe_method
from ..reading.decode import MEL_DTYPES
from ..sample import Sample, check_sample

__all__ = ["MEL_BACKENDS", "MelStage", "audio_to_mels"]

MEL_BACKENDS = ("librosa", "torch")


def _log_mel(audio: torch.Tensor, sample: AudioSample, backend: str) -> torch.Tensor:
    if backend == "torch":
        from ..audio.stft_mel import torch_log_mel  # the audio extra (librosa's filterbank)

        return torch_log_mel(audio, sample.mel)
    from ..audio.mel import log_mel  # the audio extra

    return torch.from_numpy(log_mel(audio.numpy(), sample.mel))


def audio_to_mels(sample: AudioSample, *, backend: str = "librosa", mel_dtype: str = "float32") -> Sample:
    """The :class:`~streams.sample.Sample` of ``sample``: ``raw_mel`` ``(n_mels, 1 + n // hop)`` and ``edit_mel``
    ``(n_mels, 1 + m // hop)`` in dB as ``mel_dtype``, ``pointers`` int64 ``(T_edit,)`` from ``sample.edit_map``.

    ``meta``: the audio sample's, with every mel setting (:meth:`~streams.audio.mel.MelSettings.as_meta`);
    ``key``, ``url`` and ``origin`` are kept. The input is not changed.
    """
    dtype = MEL_DTYPES[check_choice(mel_dtype, "mel_dtype", tuple(MEL_DTYPES))]
    check_choice(backend, "backend", MEL_BACKENDS)
    raw_mel = _log_mel(sample.raw, sample, backend)
    edit_mel = _log_mel(sample.edit, sample, backend)
    pointers = frame_pointers(sample.edit_map, sample.mel.hop_length, edit_mel.shape[1], raw_mel.shape[1])
    out = Sample(key=sample.key, raw_mel=raw_mel.to(dtype), edit_mel=edit_mel.to(dtype),
                 pointers=torch.from_numpy(pointers), meta={**sample.meta, **sample.mel.as_meta()}, url=sample.url,
                 origin=sample.origin)
    return check_sample(out)


class _MelNode(Node):
    counters = ("out",)

    def __next__(self) -> Sample:
        out = self.stage(next(self.upstream))
        self.counts["out"] += 1
        return out

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        return map(self.stage, self.upstream.replay(origins))


@pipe_method("mels")
class MelStage(Stage):
    """Turn audio samples into mel samples (see the module docstring).

    Args:
        backend: ``"librosa"`` (default) or ``"torch"``.
        mel_dtype: ``"float32"`` (default) or ``"float16"``, as the shard source's.

    Items that are already :class:`~streams.sample.Sample`s are refused with a ``TypeError``: the stage
    belongs right after the audio stages.
    """

    name = "mel"
    node_class = _MelNode

    def __init__(self, *, backend: str = "librosa", mel_dtype: str = "float32"):
        self.backend = check_choice(backend, "backend", MEL_BACKENDS)
        self.mel_dtype = check_choice(mel_dtype, "mel_dtype", tuple(MEL_DTYPES))

    def __call__(self, item: Any) -> Sample:
        if not isinstance(item, AudioSample):
            raise TypeError(f"the mel stage makes mels of AudioSamples ({type(item).__name__} given); put it after "
                            "an audio-shard source (Pipe.from_audio_shards) and the audio stages")
        return audio_to_mels(item, backend=self.backend, mel_dtype=self.mel_dtype)
