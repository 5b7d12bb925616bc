"""``simulate-edits``: a source folder (recordings + EDLs, some exports) from any folder of music.

For each audio file ``NAME.<ext>`` of ``audio_dir`` (sorted) and each of ``per_track`` edits, writes into
``src_dir`` under the key ``NAME`` (``NAME-eJ`` when ``per_track > 1``; characters other than letters,
digits, ``-`` and ``_`` become ``_``): ``KEY.raw.<ext>`` (a symbolic link to the file, a copy where links
are not possible), ``KEY.edl.json`` (:func:`streams.tools.edit_simulator.draw_edl`) and ``KEY.meta.json``
(``recording``: the track's key, so sets can be split by recording; the simulator's settings). For a
share ``export_fraction`` of the edits it also renders ``KEY.edit.wav`` at the recording's own sample
rate (16-bit PCM) and perturbs it like an export (:func:`streams.tools.edit_simulator.apply_export`).
Every draw is keyed by (seed, key): the same seed gives the same folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

from tqdm import tqdm

from ..audio.audio_io import AUDIO_SUFFIXES, audio_info, read_audio, write_audio
from ..audio.edl import edl_to_json, render_edit, validate_edl
from ..sample import SampleError
from ..seeding import sample_rng
from .edit_simulator import apply_export, draw_edl, draw_export

__all__ = ["SimulationReport", "simulate_edits"]


@dataclasses.dataclass
class SimulationReport:
    """What :func:`simulate_edits` wrote: ``tracks``, ``edits``, ``exports``, ``seconds`` of recordings."""

    tracks: int = 0
    edits: int = 0
    exports: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [(f"simulate-edits: {self.tracks} recording(s), {self.seconds / 60:.1f} min; {self.edits} edit(s), "
                 f"{self.exports} with an export")]


def _track_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", os.path.splitext(name)[0])


def _link_or_copy(source: str, target: str) -> None:
    if os.path.lexists(target):
        os.remove(target)
    try:
        os.symlink(os.path.abspath(source), target)
    except OSError:
        shutil.copyfile(source, target)


def simulate_edits(audio_dir: str, src_dir: str, *, per_track: int = 1, seed: int = 0, export_fraction: float = 0.0,
                   min_piece: float = 2.0, max_piece: float = 8.0, progress: bool = True) -> SimulationReport:
    """Write a source folder for ``pack-audio`` into ``src_dir`` from the music in ``audio_dir``.

    Raises ``SampleError`` naming the file for an audio file libsndfile cannot read or one too short to
    edit (shorter than ``2 * min_piece`` seconds).
    """
    if not isinstance(per_track, int) or per_track < 1:
        raise ValueError(f"per_track must be an integer >= 1 ({per_track!r} given)")
    if not 0.0 <= export_fraction <= 1.0:
        raise ValueError(f"export_fraction must be in [0, 1] ({export_fraction!r} given)")
    if not os.path.isdir(audio_dir):
        raise ValueError(f"{audio_dir} is not a folder of music")
    names = sorted(n for n in os.listdir(audio_dir)
                   if n.lower().endswith(AUDIO_SUFFIXES) and os.path.isfile(os.path.join(audio_dir, n)))
    if not names:
        raise ValueError(f"{audio_dir}: no audio files (endings libsndfile reads: {', '.join(AUDIO_SUFFIXES[:6])}...)")
    os.makedirs(src_dir, exist_ok=True)
    report = SimulationReport()
    for name in tqdm(names, unit="recording", desc="simulate-edits", disable=not progress):
        path = os.path.join(audio_dir, name)
        info = audio_info(path)
        track = _track_key(name)
        ext = os.path.splitext(name)[1].lower()
        report.tracks += 1
        report.seconds += info.seconds
        audio = None
        for j in range(per_track):
            key = track if per_track == 1 else f"{track}-e{j}"
            rng = sample_rng(seed, 0, "simulate-edits", key)
            try:
                edl = draw_edl(info.seconds, rng, min_piece=min_piece, max_piece=max_piece)
            except ValueError as err:
                raise SampleError(f"{path}: {err}", reason="too_short", key=key) from err
            validate_edl(edl, info.seconds, info.sample_rate, path)
            _link_or_copy(path, os.path.join(src_dir, f"{key}.raw{ext}"))
            with open(os.path.join(src_dir, f"{key}.edl.json"), "w") as f:
                json.dump(edl_to_json(edl), f, indent=1)
            meta = {"recording": track, "simulated_edit": {"seed": seed, "min_piece": min_piece,
                                                           "max_piece": max_piece, "source": name}}
            export_path = os.path.join(src_dir, f"{key}.edit.wav")
            if rng.random() < export_fraction:
                if audio is None:
                    audio, _ = read_audio(path)
                perturbation = draw_export(rng)
                edit = apply_export(render_edit(audio, info.sample_rate, edl), info.sample_rate, perturbation)
                write_audio(export_path, edit, info.sample_rate, subtype="PCM_16")
                meta["simulated_export"] = perturbation.as_meta()
                report.exports += 1
            elif os.path.exists(export_path):
                os.remove(export_path)  # a run before with another seed or fraction left one
            with open(os.path.join(src_dir, f"{key}.meta.json"), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
            report.edits += 1
    return report
