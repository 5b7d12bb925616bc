"""Pictures of what audio stages do: mels before and after, and the pointer map, one PNG per stage.

The audio sibling of :mod:`streams.tools.preview`, drawn by the same figure
(:func:`~streams.tools.preview.render_before_after`): an :class:`~streams.audio.sample.AudioSample` before
and after a stage is turned into mels (librosa's, :func:`streams.audio.mel.log_mel`) and pointers
(:func:`streams.audio.timeline.frame_pointers`). :func:`recording_sample` makes a sample of a recording file
(its edit the recording itself) to start from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..audio.audio_io import read_audio, resample
from ..audio.mel import MelSettings, log_mel
from ..audio.sample import AudioSample
from ..audio.timeline import EditMap, frame_pointers
from ..sample import Sample
from ..stages.audio_augment import AudioAugmentStage
from .preview import describe_params, render_before_after, stage_png

__all__ = ["audio_mels", "recording_sample", "render_audio_preview"]


def audio_mels(sample: AudioSample) -> Sample:
    """The mel sample of ``sample``: raw and edit log-mels ``(n_mels, frames)`` with ``sample.mel``, and the
    pointers of its edit map; meta and origin carried over."""
    raw = torch.from_numpy(log_mel(sample.raw.numpy(), sample.mel))
    edit = torch.from_numpy(log_mel(sample.edit.numpy(), sample.mel))
    pointers = frame_pointers(sample.edit_map, sample.mel.hop_length, edit.shape[1], raw.shape[1])
    return Sample(sample.key, raw, edit, torch.from_numpy(pointers), meta=sample.meta, url=sample.url,
                  origin=sample.origin)


def recording_sample(path: str, settings: MelSettings | None = None, *, start_seconds: float = 0.0,
                     max_seconds: float | None = None, key: str | None = None) -> AudioSample:
    """An :class:`AudioSample` of the recording at ``path`` (mono, resampled to ``settings.sample_rate``),
    ``max_seconds`` of it from ``start_seconds``; its edit is the recording itself (identity map).
    ``settings`` default to :class:`MelSettings`' defaults."""
    settings = settings or MelSettings()
    audio, rate = read_audio(path)
    audio = resample(audio, rate, settings.sample_rate)
    start = round(start_seconds * settings.sample_rate)
    stop = None if max_seconds is None else start + round(max_seconds * settings.sample_rate)
    raw = torch.from_numpy(audio[start:stop].copy())
    return AudioSample(key or Path(path).name, raw, raw.clone(), settings.sample_rate, EditMap.identity(len(raw)),
                       settings)


def render_audio_preview(sample: AudioSample, stages: Sequence[tuple[str, AudioAugmentStage]], out_dir: str | Path,
                         seed: int = 0, *, chained: bool = False, dpi: int = 80) -> list[Path]:
    """Write one PNG per ``(name, stage)`` into ``out_dir`` (``NN_<name>.png``); return their paths.

    Each stage is forced to fire with the generator a pipe would use for ``(seed, epoch 0, name, key)``;
    on the original ``sample``, or with ``chained`` on the previous stage's output (so a speed change shows
    on a re-edit). Titles show the recorded params; ``dpi`` sets the size (80: 960 x 720 pixels).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    current = sample
    for index, (name, stage) in enumerate(stages):
        params = stage.draw(current, stage.keyed_generator(seed, 0, name, current.key))
        after = current if params is None else stage.apply(current, params)
        title = [f"{name} on {current.key}", *describe_params(params, width=125)]
        paths.append(render_before_after(audio_mels(current), audio_mels(after), title,
                                         stage_png(out_dir, index, name), dpi=dpi))
        if chained:
            current = after
    return paths
