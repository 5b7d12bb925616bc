"""Record of an audio shard -> :class:`~streams.audio.sample.AudioSample`: decode the FLAC, parse EDL and mel settings.

An audio shard (``pack-audio --store audio``; ``shards/README.md``, "Audio shards") holds per key
``raw.flac`` (the recording, mono at the mel sample rate), ``edl.json``, ``mel.json`` (the mel settings
and the FLAC decode gains), optionally ``edit.flac`` (the editor's export, same rate) and ``meta.json``.
Decoding checks every member and the sample as a whole, and every failure is a
:class:`~streams.sample.SampleError` naming the shard, the key and the member, with a reason from
:data:`AUDIO_DECODE_REASONS`, so that it meets the source's error policy like a bad mel sample.

Without ``edit.flac`` the edit is rendered from the recording by the EDL's rendering rule, here, in the
worker that reads it (as ``pack-audio`` renders it for mel shards, with the same zero padding when
the resampled recording ends a sample before the EDL's last segment).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import torch

from ..audio.edl import EditList, edl_to_json, parse_edl, render_edit, validate_edl
from ..audio.mel import MelSettings
from ..audio.sample import AudioSample, check_audio_sample
from ..audio.timeline import EditMap
from ..sample import SampleError
from .decode import META_MEMBER
from .tar_records import AUDIO_LAYOUT, Record, member_error

__all__ = ["AUDIO_DECODE_REASONS", "AUDIO_REQUIRED_MEMBERS", "EDGE_SAMPLES", "MAX_EXPORT_MISMATCH_FRAMES",
           "decode_audio_header", "decode_audio_record", "mel_settings_from_json", "mel_settings_to_json"]

AUDIO_REQUIRED_MEMBERS = AUDIO_LAYOUT.required[0]
AUDIO_DECODE_REASONS = ("bad_audio", "bad_edl", "bad_mel_settings", "bad_meta", "bad_sample_rate", "decode_error",
                        "edl_out_of_range", "empty_audio", "export_length", "missing_member")
"""Reasons :func:`decode_audio_record` raises (besides the grouping problems a record carries and
:func:`~streams.audio.sample.check_audio_sample`'s)."""
MAX_EXPORT_MISMATCH_FRAMES = 2
"""An export may differ from its EDL's length by this many frames (as in ``pack-audio``)."""
EDGE_SAMPLES = 1
"""The EDL's last segment may pass the stored recording's end by this many samples: resampling at pack
time rounds the length; zeros stand in for the missing sample (as ``pack-audio`` does)."""

_FIXED_SETTINGS = {key: value for key, value in MelSettings().as_meta().items()
                   if key not in {f.name for f in dataclasses.fields(MelSettings)}}
"""The transform's fixed settings (window, framing, scale, dB reference...): a ``mel.json`` must agree."""


def mel_settings_to_json(settings: MelSettings, decode_gain: dict[str, float]) -> bytes:
    """The ``mel.json`` member: every setting (:meth:`MelSettings.as_meta`) and ``decode_gain`` per FLAC member."""
    return json.dumps({**settings.as_meta(), "decode_gain": decode_gain}, sort_keys=True).encode()


def mel_settings_from_json(data: bytes | bytearray, where: str) -> tuple[MelSettings, dict[str, float]]:
    """``(settings, decode_gain)`` from a ``mel.json`` member; ``SampleError(reason="bad_mel_settings")`` naming
    ``where`` and the field for anything missing, unknown, of the wrong type or out of range."""
    def fail(message: str) -> SampleError:
        return SampleError(f"{where}: {message}; re-pack the shard (pack-audio --store audio) or fix mel.json",
                           reason="bad_mel_settings")

    try:
        fields = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise fail(f"not valid JSON ({type(err).__name__}: {err})") from err
    if not isinstance(fields, dict):
        raise fail(f"must hold a JSON object, got {type(fields).__name__}")
    names = [f.name for f in dataclasses.fields(MelSettings)]
    unknown = sorted(set(fields) - set(names) - set(_FIXED_SETTINGS) - {"decode_gain"})
    if unknown:
        raise fail(f"unknown field(s) {unknown}")
    missing = [name for name in names if name not in fields]
    if missing:
        raise fail(f"missing field(s) {missing}")
    for name, value in _FIXED_SETTINGS.items():
        if name in fields and fields[name] != value:
            raise fail(f"{name} is {fields[name]!r}, but mels here are made with {name} {value!r} only")
    try:
        settings = MelSettings(**{name: fields[name] for name in names})
    except (TypeError, ValueError) as err:
        raise fail(str(err)) from err
    gains = fields.get("decode_gain", {})
    if not isinstance(gains, dict) or any(
            member not in ("raw", "edit") or isinstance(g, bool) or not isinstance(g, (int, float))
            or not (math.isfinite(g) and g > 0) for member, g in gains.items()):
        raise fail(f"decode_gain must be {{\"raw\": gain, \"edit\": gain}} with gains > 0 ({gains!r:.80} given)")
    return settings, {"raw": float(gains.get("raw", 1.0)), "edit": float(gains.get("edit", 1.0))}


def _flac(record: Record, member: str, gain: float, rate: int) -> np.ndarray:
    """The decoded FLAC member at ``rate``: float32 ``(n,)``; a member error naming it otherwise."""
    from ..audio.flac import decode_flac  # the audio extra

    try:
        audio, stored_rate = decode_flac(record.members[member], gain)
    except Exception as err:  # libsndfile's errors: LibsndfileError, RuntimeError, EOFError...
        raise member_error(record, "bad_audio", member, f"not decodable FLAC ({type(err).__name__}: {err}); "
                                                        "re-pack the shard") from err
    if stored_rate != rate:
        raise member_error(record, "bad_sample_rate", member, f"the audio is at {stored_rate} Hz but mel.json says "
                                                              f"sample_rate {rate}; re-pack the shard")
    if audio.size == 0:
        raise member_error(record, "empty_audio", member, "no audio in it (0 samples)")
    if not np.isfinite(audio).all():
        raise member_error(record, "bad_audio", member, "holds NaN or Inf samples; re-pack the shard")
    return audio


def _edl(record: Record, where: str) -> EditList:
    try:
        return parse_edl(bytes(record.members["edl.json"]), f"{where}, member edl.json")
    except SampleError as err:
        raise SampleError(str(err), reason=err.reason, key=record.key, url=record.url, member="edl.json") from err


def _meta(record: Record) -> dict[str, Any]:
    data = record.members.get(META_MEMBER)
    if data is None:
        return {}
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise member_error(record, "bad_meta", META_MEMBER, f"not valid JSON ({type(err).__name__}: {err}); fix or "
                                                            "remove it") from err
    if not isinstance(meta, dict):
        raise member_error(record, "bad_meta", META_MEMBER, f"must hold a JSON object, got {type(meta).__name__}")
    return meta


def _missing(record: Record) -> None:
    missing = [m for m in AUDIO_REQUIRED_MEMBERS if m not in record.members]
    if not missing:
        return
    present = ", ".join(sorted(record.members)) or "none"
    hint = (" (it holds mels: this is a mel shard; read it with source.store \"mel\")"
            if "raw_mel.npy" in record.members else "")
    raise member_error(record, "missing_member", missing[0],
                       f"missing member(s) {', '.join(missing)} (present: {present}){hint}; every sample of an "
                       f"audio shard needs {', '.join(AUDIO_REQUIRED_MEMBERS)}")


def _settings(record: Record) -> tuple[MelSettings, dict[str, float]]:
    _missing(record)
    where = f"sample {record.key!r} in shard {record.url}, member mel.json"
    try:
        return mel_settings_from_json(record.members["mel.json"], where)
    except SampleError as err:
        err.key, err.url, err.member = record.key, record.url, "mel.json"
        raise


def _check_lengths(record: Record, edl: EditList, settings: MelSettings, raw_samples: int,
                   edit_samples: int | None) -> None:
    """The EDL against the recording's length, the export's length (``None``: rendered) against the EDL's."""
    sr, hop = settings.sample_rate, settings.hop_length
    where = f"sample {record.key!r} in shard {record.url}, member edl.json"
    try:
        validate_edl(edl, (raw_samples + EDGE_SAMPLES) / sr, sr, where)
    except SampleError as err:
        raise SampleError(f"{err} (the recording, raw.flac, lasts {raw_samples / sr:.3f} s)", reason=err.reason,
                          key=record.key, url=record.url, member="edl.json") from err
    expected = edl.edit_samples(sr)
    off = 0.0 if edit_samples is None else (edit_samples - expected) / hop
    if abs(off) > MAX_EXPORT_MISMATCH_FRAMES:
        raise member_error(record, "export_length", "edit.flac",
                           f"the export is {abs(off):.1f} frames {'longer' if off > 0 else 'shorter'} than its EDL "
                           f"implies ({expected / sr:.3f} s); at most {MAX_EXPORT_MISMATCH_FRAMES} are allowed")


def decode_audio_header(record: Record) -> tuple[MelSettings, EditList, int, int]:
    """``(settings, edl, raw samples, edit samples)`` of an audio shard's record from ``mel.json``, ``edl.json``
    and the FLAC headers, checked as :func:`decode_audio_record` checks them, without decoding the audio
    (for ``info``). The edit's length is the export's, or the EDL's when it is rendered."""
    from ..audio.flac import flac_frames  # the audio extra

    if record.problem is not None:
        raise record.problem
    settings, _ = _settings(record)

    def samples(member: str) -> int:
        try:
            count, rate = flac_frames(record.members[member])
        except Exception as err:
            raise member_error(record, "bad_audio", member, f"not a FLAC header ({type(err).__name__}: {err}); "
                                                            "re-pack the shard") from err
        if rate != settings.sample_rate:
            raise member_error(record, "bad_sample_rate", member, f"the audio is at {rate} Hz but mel.json says "
                                                                  f"sample_rate {settings.sample_rate}")
        return count

    edl = _edl(record, f"sample {record.key!r} in shard {record.url}")
    raw_samples = samples("raw.flac")
    export = samples("edit.flac") if "edit.flac" in record.members else None
    _check_lengths(record, edl, settings, raw_samples, export)
    return settings, edl, raw_samples, edl.edit_samples(settings.sample_rate) if export is None else export


def _decode(record: Record) -> AudioSample:
    if record.problem is not None:
        raise record.problem
    settings, gains = _settings(record)
    sr = settings.sample_rate
    edl = _edl(record, f"sample {record.key!r} in shard {record.url}")
    raw = _flac(record, "raw.flac", gains["raw"], sr)
    if "edit.flac" in record.members:
        edit = _flac(record, "edit.flac", gains["edit"], sr)
        _check_lengths(record, edl, settings, len(raw), len(edit))
        edit_map = EditMap.from_edl(edl, sr).with_edit_samples(len(edit))
    else:
        _check_lengths(record, edl, settings, len(raw), None)
        starts, lengths, _ = edl.sample_plan(sr)
        reach = int((starts + lengths).max())
        edit = render_edit(np.pad(raw, (0, max(0, reach - len(raw)))), sr, edl)
        edit_map = EditMap.from_edl(edl, sr)
    meta = {**_meta(record), "edl": edl_to_json(edl)}
    sample = AudioSample(key=record.key, raw=torch.from_numpy(raw), edit=torch.from_numpy(edit), sample_rate=sr,
                         edit_map=edit_map, mel=settings, meta=meta, url=record.url)
    return check_audio_sample(sample)


def decode_audio_record(record: Record) -> AudioSample:
    """The checked :class:`~streams.audio.sample.AudioSample` of an audio shard's ``record``.

    ``raw`` and ``edit`` are float32 at the mel settings' rate (``mel.json``); ``edit_map`` is the EDL's
    pointer rule (over the export's length when there is one); ``meta`` is ``meta.json`` with ``edl``
    set to the EDL. Raises :class:`~streams.sample.SampleError` with ``key``, ``url`` and ``member``:
    ``missing_member``, ``bad_mel_settings``, ``bad_edl``, ``bad_audio`` (not decodable, not finite),
    ``empty_audio``, ``bad_sample_rate`` (the FLAC's rate is not the settings'), ``edl_out_of_range`` (the
    recording is too short for its EDL), ``export_length``, ``bad_meta``; any other exception becomes
    ``decode_error``.
    """
    try:
        return _decode(record)
    except SampleError as err:
        if err.key is None:
            err.key, err.url = record.key, record.url
        raise
    except Exception as err:
        raise SampleError(f"sample {record.key!r} in shard {record.url}: decoding failed ({type(err).__name__}: "
                          f"{err}); check or re-write its members", reason="decode_error", key=record.key,
                          url=record.url) from err

