"""A source folder of recordings and edit lists, and the sample one entry of it makes.

Layout (``shards/README.md``, "Audio source folders"): ``KEY.raw.<ext>`` the recording (any format
libsndfile reads, any sample rate and channel count, mixed to mono); ``KEY.edl.json`` its EDL
(:mod:`streams.audio.edl`); optionally ``KEY.edit.<ext>``, the editor's own export of that EDL, whose
mel is then the edit mel (otherwise the edit is rendered from the recording and the EDL); optionally
``KEY.meta.json``, carried into the sample's ``meta``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os

import numpy as np
import soundfile
import torch

from ..audio.audio_io import AUDIO_SUFFIXES, read_audio, resample
from ..audio.edl import EditList, edit_pointers, edl_to_json, parse_edl, render_edit, validate_edl
from ..audio.mel import MelSettings, log_mel, mel_frames
from ..reading.audio_decode import MAX_EXPORT_MISMATCH_FRAMES  # editors pad or trim an export a little
from ..sample import Sample, SampleError, check_sample

__all__ = ["MAX_EXPORT_MISMATCH_FRAMES", "AudioSource", "audio_members", "audio_sample", "find_audio_sources",
           "library_versions"]



@dataclasses.dataclass(frozen=True)
class AudioSource:
    """The files of one key: ``raw`` and ``edl`` paths, ``edit`` and ``meta`` paths or ``None``."""

    key: str
    raw: str
    edl: str
    edit: str | None = None
    meta: str | None = None


def _split(name: str) -> tuple[str, str, str] | None:
    """``KEY.role.ext`` -> ``(key, role, ext)`` for the roles of the layout, else ``None``."""
    parts = name.split(".")
    if len(parts) < 3 or parts[-2] not in ("raw", "edl", "edit", "meta"):
        return None
    return ".".join(parts[:-2]), parts[-2], parts[-1].lower()


def find_audio_sources(directory: str) -> tuple[list[AudioSource], list[SampleError]]:
    """Every complete entry of ``directory`` sorted by key, and a ``SampleError`` for every incomplete one.

    Incomplete: a recording with no EDL (``missing_edl``), an EDL or export with no recording
    (``missing_recording``), two recordings or two exports for one key (``duplicate_file``), a key with a
    dot (``bad_key``). Files of other names are ignored.
    """
    if not os.path.isdir(directory):
        raise ValueError(f"{directory} is not a folder (expected KEY.raw.<ext> + KEY.edl.json files)")
    groups: dict[str, dict[str, list[str]]] = {}
    for name in sorted(os.listdir(directory)):
        parts = _split(name)
        if parts is None:
            continue
        key, role, ext = parts
        if (ext == "json") if role in ("edl", "meta") else (f".{ext}" in AUDIO_SUFFIXES):
            groups.setdefault(key, {}).setdefault(role, []).append(os.path.join(directory, name))
    sources, problems = [], []
    for key in sorted(groups):
        files = groups[key]
        duplicated = [paths for role, paths in files.items() if len(paths) > 1]
        if "." in key:
            problems.append(SampleError(f"{directory}: key {key!r} has a dot; a shard key ends at its first dot: "
                                        "rename the files", reason="bad_key", key=key))
        elif duplicated:
            problems.append(SampleError(f"{directory}: key {key!r} has {len(duplicated[0])} files for one role "
                                        f"({', '.join(os.path.basename(p) for p in duplicated[0])}); keep one",
                                        reason="duplicate_file", key=key))
        elif "raw" not in files:
            named = os.path.basename(files.get("edl", files.get("edit", files.get("meta", [""])))[0])
            problems.append(SampleError(f"{os.path.join(directory, named)}: no recording {key}.raw.<ext> for it; "
                                        "add the recording or remove the file", reason="missing_recording", key=key))
        elif "edl" not in files:
            problems.append(SampleError(f"{files['raw'][0]}: no edit list {key}.edl.json for this recording; "
                                        "add one (python -m pipelines simulate-edits makes them)",
                                        reason="missing_edl", key=key))
        else:
            sources.append(AudioSource(key, files["raw"][0], files["edl"][0], (files.get("edit") or [None])[0],
                                       (files.get("meta") or [None])[0]))
    return sources, problems


def library_versions() -> dict[str, str]:
    """Versions of the libraries that make the mels (for a sample's ``meta``)."""
    versions = {name: importlib.metadata.version(name) for name in ("librosa", "soundfile", "soxr", "numpy")}
    return {**versions, "libsndfile": soundfile.__libsndfile_version__}


def _read_meta(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise SampleError(f"{path}: not readable JSON ({err})", reason="bad_meta") from err
    if not isinstance(meta, dict):
        raise SampleError(f"{path}: meta must be a JSON object (got {type(meta).__name__})", reason="bad_meta")
    return meta


def _read_edl(path: str) -> EditList:
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as err:
        raise SampleError(f"{path}: cannot read it ({err})", reason="bad_edl") from err
    return parse_edl(text, path)


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One source entry read and checked: ``raw`` (and ``export``, if any) mono float32 at the mel rate."""

    raw: np.ndarray
    export: np.ndarray | None
    edl: EditList
    meta: dict


def _load_entry(source: AudioSource, settings: MelSettings) -> _Entry:
    """Read, check and resample one entry's files; ``SampleError`` naming the file (and the key) otherwise.

    ``meta``: the entry's ``KEY.meta.json``, then ``recording`` (the meta's own, else the key), every mel
    setting, the library versions, the EDL, and where the edit came from."""
    key, sr, hop = source.key, settings.sample_rate, settings.hop_length
    try:
        user_meta = _read_meta(source.meta) if source.meta else {}
        edl = _read_edl(source.edl)
        raw_audio, raw_rate = read_audio(source.raw)
        validate_edl(edl, len(raw_audio) / raw_rate, raw_rate, source.edl)
        raw = resample(raw_audio, raw_rate, sr)
        expected = edl.edit_samples(sr)
        export, edit_rate = None, sr
        if source.edit is not None:
            edit_audio, edit_rate = read_audio(source.edit)
            export = resample(edit_audio, edit_rate, sr)
            off_frames = (len(export) - expected) / hop
            if abs(off_frames) > MAX_EXPORT_MISMATCH_FRAMES:
                word = "longer" if off_frames > 0 else "shorter"
                raise SampleError(
                    f"{source.edit}: the export is {abs(len(export) - expected) / sr:.3f} s ({abs(off_frames):.1f} "
                    f"frames) {word} than its EDL {os.path.basename(source.edl)} implies ({expected / sr:.3f} s); "
                    f"at most {MAX_EXPORT_MISMATCH_FRAMES} frames are allowed: is it the export of that EDL?",
                    reason="export_length")
    except SampleError as err:  # every problem above names the file; the entry's key is added here
        raise SampleError(str(err), reason=err.reason, key=key) from err
    meta = {
        **user_meta,
        "recording": user_meta.get("recording", key),
        **settings.as_meta(),
        "versions": library_versions(),
        "edl": edl_to_json(edl),
        "edit_form": "rendered" if export is None else "exported",
        "source_files": {"raw": os.path.basename(source.raw), "edl": os.path.basename(source.edl),
                         "edit": None if source.edit is None else os.path.basename(source.edit)},
        "source_sample_rates": {"raw": raw_rate, "edit": edit_rate},
    }
    return _Entry(raw, export, edl, meta)


def audio_sample(source: AudioSource, settings: MelSettings, *, dtype: torch.dtype = torch.float16) -> Sample:
    """The sample of one source entry: log-mels of recording and edit, pointers by the pointer rule.

    ``raw_mel`` ``(n_mels, T_raw)`` and ``edit_mel`` ``(n_mels, T_edit)`` in ``dtype`` (dB, see
    :mod:`streams.audio.mel`), ``pointers`` int64 ``(T_edit,)``. The edit is the export when there is one
    (its length must match the EDL's within :data:`MAX_EXPORT_MISMATCH_FRAMES` frames), else rendered.
    ``meta``: see :func:`_load_entry`. Raises ``SampleError`` naming the file for every problem of the entry.
    """
    key, sr, hop = source.key, settings.sample_rate, settings.hop_length
    entry = _load_entry(source, settings)
    raw, edl = entry.raw, entry.edl
    raw_mel = log_mel(raw, settings)
    if entry.export is None:
        starts, lengths, _ = edl.sample_plan(sr)
        reach = int((starts + lengths).max())  # a segment ending at the last sample may pass the resampled
        padded = np.pad(raw, (0, max(0, reach - len(raw))))  # end by a rounding: zeros stand in for it
        edit = render_edit(padded, sr, edl)
    else:
        edit = entry.export
    edit_mel = log_mel(edit, settings)
    pointers = edit_pointers(edl, sr, hop, edit_mel.shape[1], raw_mel.shape[1])
    if raw_mel.shape[1] != mel_frames(len(raw), hop):
        raise RuntimeError(f"{source.raw}: librosa made {raw_mel.shape[1]} frames, not 1 + samples // hop")
    sample = Sample(key=key, raw_mel=torch.from_numpy(raw_mel).to(dtype), edit_mel=torch.from_numpy(edit_mel).to(dtype),
                    pointers=torch.from_numpy(np.ascontiguousarray(pointers)), meta=entry.meta)
    try:
        check_sample(sample)
    except SampleError as err:
        raise SampleError(f"{source.raw}: the packed sample fails the sample check: {err}", reason=err.reason,
                          key=key) from err
    return sample


def audio_members(source: AudioSource, settings: MelSettings) -> tuple[dict[str, bytes], tuple[int, int]]:
    """The audio-shard members of one source entry, and its ``(raw frames, edit frames)`` for ``index.json``.

    Members (``shards/README.md``, "Audio shards"): ``raw.flac`` (the recording, mono, resampled once to
    the mel rate), ``edl.json``, ``mel.json`` (the settings and the FLAC decode gains), ``edit.flac`` when
    the entry has an export (resampled the same way), ``meta.json`` (as :func:`audio_sample`'s meta). The
    members are decoded back as a reader would (:func:`streams.reading.audio_decode.decode_audio_record`)
    before they are returned, so what is written reads. Raises ``SampleError`` naming the file.
    """
    from ..audio.flac import encode_flac
    from ..reading.audio_decode import decode_audio_record, mel_settings_to_json
    from ..reading.tar_records import Record

    entry = _load_entry(source, settings)
    raw_flac, raw_gain = encode_flac(entry.raw, settings.sample_rate)
    members = {"raw.flac": raw_flac, "edl.json": json.dumps(edl_to_json(entry.edl)).encode()}
    gains = {"raw": raw_gain}
    if entry.export is not None:
        members["edit.flac"], gains["edit"] = encode_flac(entry.export, settings.sample_rate)
    members["mel.json"] = mel_settings_to_json(settings, gains)
    members["meta.json"] = json.dumps(entry.meta, sort_keys=True).encode()
    try:
        decoded = decode_audio_record(Record(source.key, 0, dict(members), source.raw))
    except SampleError as err:
        raise SampleError(f"{source.raw}: the packed audio sample does not read back: {err}", reason=err.reason,
                          key=source.key) from err
    hop = settings.hop_length
    return members, (mel_frames(decoded.raw.shape[0], hop), mel_frames(decoded.edit.shape[0], hop))
