"""Edit decision lists: parse and validate ``KEY.edl.json``, render the edit, and derive its pointers.

An EDL is ``{"segments": [[start_seconds, end_seconds], ...], "crossfade": seconds}``: pieces of the
recording in raw time, listed in edit order (they may repeat, reorder or skip parts), joined with
equal-power crossfades of ``crossfade`` seconds (optional, default 0).

Everything below works in samples at one sample rate ``sr``: a time ``t`` is sample ``round(t * sr)``.
With segment ``k`` covering raw samples ``[s_k, e_k)`` (length ``L_k``) and a crossfade of ``X`` samples:

* **Rendering rule**: segment ``k`` starts at edit sample ``E_k = sum_{j<k} (L_j - X)``; consecutive
  segments overlap by ``X`` samples, the outgoing one faded by ``cos``, the incoming one by ``sin``
  (``t = (n + 0.5) / X`` over the overlap, so ``cos^2 + sin^2 = 1``: equal power). The edit lasts
  ``sum(L_k) - X * (segments - 1)`` samples.
* **Pointer rule**: with ``center=True`` framing at hop ``h``, edit frame ``i`` is centred at edit sample
  ``c = i * h``. It belongs to segment ``k`` from ``E_k`` until the midpoint of the crossfade into
  ``k + 1`` (edit sample ``E_{k+1} + X / 2``; from there on it belongs to ``k + 1``). Its raw sample is
  ``s_k + (c - E_k)`` and its pointer ``round(raw_sample / h)`` (halves round up), clipped to
  ``[0, T_raw)``. With no crossfade and hop-aligned cuts this is plain frame arithmetic.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from ..sample import SampleError

__all__ = ["EditList", "edit_pointers", "edl_from_json", "edl_to_json", "parse_edl", "render_edit", "validate_edl"]


@dataclasses.dataclass(frozen=True)
class EditList:
    """One edit: ``segments`` as ``(start_seconds, end_seconds)`` in edit order, ``crossfade`` in seconds."""

    segments: tuple[tuple[float, float], ...]
    crossfade: float = 0.0

    def sample_plan(self, sr: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(raw_starts, lengths, crossfade)`` in samples at ``sr``: int64 arrays of shape ``(segments,)``."""
        bounds = np.array([[round(start * sr), round(end * sr)] for start, end in self.segments], dtype=np.int64)
        return bounds[:, 0], bounds[:, 1] - bounds[:, 0], round(self.crossfade * sr)

    def edit_starts(self, sr: int) -> np.ndarray:
        """``E_k``: the edit sample where each segment starts, int64 ``(segments,)``."""
        _, lengths, crossfade = self.sample_plan(sr)
        return np.concatenate([[0], np.cumsum(lengths[:-1] - crossfade)]).astype(np.int64)

    def edit_samples(self, sr: int) -> int:
        """The edit's length in samples at ``sr``: ``sum(L_k) - X * (segments - 1)``.

        >>> EditList(((0.0, 1.0), (2.0, 3.0)), crossfade=0.25).edit_samples(8)
        14
        """
        _, lengths, crossfade = self.sample_plan(sr)
        return int(lengths.sum() - crossfade * (len(lengths) - 1))


def edl_to_json(edl: EditList) -> dict:
    """The JSON form of ``edl`` (what ``KEY.edl.json`` holds)."""
    return {"segments": [[start, end] for start, end in edl.segments], "crossfade": edl.crossfade}


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def edl_from_json(data: object, source: str) -> EditList:
    """An :class:`EditList` from parsed JSON; ``SampleError(reason="bad_edl")`` naming ``source`` if malformed."""
    if not isinstance(data, dict) or "segments" not in data:
        raise SampleError(f"{source}: an EDL must be a JSON object with \"segments\": [[start_seconds, "
                          f"end_seconds], ...] (got {type(data).__name__})", reason="bad_edl")
    unknown = sorted(set(data) - {"segments", "crossfade"})
    if unknown:
        raise SampleError(f"{source}: unknown EDL field(s) {unknown}; allowed: segments, crossfade",
                          reason="bad_edl")
    segments = data["segments"]
    if not isinstance(segments, list) or not segments:
        raise SampleError(f"{source}: \"segments\" must be a non-empty list of [start_seconds, end_seconds] "
                          f"(got {segments!r:.80})", reason="bad_edl")
    parsed = []
    for k, segment in enumerate(segments):
        if not isinstance(segment, (list, tuple)) or len(segment) != 2 or not all(map(_finite_number, segment)):
            raise SampleError(f"{source}: segments[{k}] must be [start_seconds, end_seconds], two finite numbers "
                              f"(got {segment!r:.80})", reason="bad_edl")
        parsed.append((float(segment[0]), float(segment[1])))
    crossfade = data.get("crossfade", 0.0)
    if not _finite_number(crossfade) or crossfade < 0:
        raise SampleError(f"{source}: \"crossfade\" must be a number of seconds >= 0 (got {crossfade!r})",
                          reason="bad_edl")
    return EditList(tuple(parsed), float(crossfade))


def parse_edl(text: str | bytes, source: str) -> EditList:
    """Parse the text of an EDL file; errors name ``source`` (the file) and say what is wrong.

    >>> parse_edl('{"segments": [[0, 1.5], [3, 4]], "crossfade": 0.01}', "a.edl.json")
    EditList(segments=((0.0, 1.5), (3.0, 4.0)), crossfade=0.01)
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SampleError(f"{source}: not JSON ({err}); an EDL is {{\"segments\": [[start, end], ...], "
                          "\"crossfade\": seconds}", reason="bad_edl") from err
    return edl_from_json(data, source)


def validate_edl(edl: EditList, duration_seconds: float, sr: int, source: str) -> None:
    """Check ``edl`` against a recording of ``duration_seconds``; ``SampleError`` naming ``source`` if not usable.

    Each segment needs ``end > start`` (in samples at ``sr``) and must lie inside the recording; with two or
    more segments the crossfade may not be longer than any segment (it would overlap three pieces).
    """
    raw_starts, lengths, crossfade = edl.sample_plan(sr)
    total = round(duration_seconds * sr)
    for k, ((start, end), length) in enumerate(zip(edl.segments, lengths)):
        if length <= 0:
            raise SampleError(f"{source}: segments[{k}] = [{start}, {end}] has end <= start (at {sr} Hz); "
                              "each segment needs end > start", reason="bad_edl")
        if raw_starts[k] < 0 or raw_starts[k] + length > total:
            raise SampleError(f"{source}: segments[{k}] = [{start}, {end}] is outside the recording "
                              f"(0 to {duration_seconds:.3f} s)", reason="edl_out_of_range")
    if len(lengths) > 1 and crossfade > lengths.min():
        k = int(lengths.argmin())
        raise SampleError(f"{source}: crossfade {edl.crossfade} s is longer than segments[{k}] "
                          f"({lengths[k] / sr:.4f} s); shorten the crossfade or that segment", reason="bad_edl")


def _fades(crossfade: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power ``(fade_in, fade_out)`` of ``crossfade`` samples: ``sin`` and ``cos`` of ``pi/2 * t``."""
    t = (np.arange(crossfade, dtype=np.float64) + 0.5) / max(crossfade, 1)
    return np.sin(0.5 * np.pi * t).astype(np.float32), np.cos(0.5 * np.pi * t).astype(np.float32)


def render_edit(audio: np.ndarray, sr: int, edl: EditList) -> np.ndarray:
    """The edit of mono ``audio`` ``(samples,)`` at ``sr`` by the rendering rule; float32 ``(edit samples,)``.

    ``edl`` must have passed :func:`validate_edl` for this recording. The input is not modified.

    >>> render_edit(np.arange(8, dtype=np.float32), 1, EditList(((4.0, 6.0), (0.0, 2.0)))).tolist()
    [4.0, 5.0, 0.0, 1.0]
    """
    raw_starts, lengths, crossfade = edl.sample_plan(sr)
    starts = edl.edit_starts(sr)
    out = np.zeros(edl.edit_samples(sr), dtype=np.float32)
    fade_in, fade_out = _fades(crossfade)
    last = len(lengths) - 1
    for k in range(len(lengths)):  # one pass per segment, vectorised within it
        piece = audio[raw_starts[k]: raw_starts[k] + lengths[k]].astype(np.float32, copy=True)
        if crossfade and k > 0:
            piece[:crossfade] *= fade_in
        if crossfade and k < last:
            piece[lengths[k] - crossfade:] *= fade_out
        out[starts[k]: starts[k] + lengths[k]] += piece
    return out


def edit_pointers(edl: EditList, sr: int, hop_length: int, edit_frames: int, raw_frames: int) -> np.ndarray:
    """Pointers by the pointer rule: int64 ``(edit_frames,)``, each in ``[0, raw_frames)``.

    >>> edit_pointers(EditList(((4.0, 6.0), (0.0, 2.0))), 2, 2, 4, 7).tolist()
    [4, 5, 0, 1]
    """
    raw_starts, _, crossfade = edl.sample_plan(sr)
    starts = edl.edit_starts(sr)
    centres = np.arange(edit_frames, dtype=np.int64) * hop_length
    # segment k owns [E_k, E_{k+1} + X/2); compare 2c with 2E_{k+1} + X to stay in integers
    switch = 2 * starts[1:] + crossfade
    segment = np.searchsorted(switch, 2 * centres, side="right")
    raw_sample = raw_starts[segment] + (centres - starts[segment])
    pointers = (2 * raw_sample + hop_length) // (2 * hop_length)  # floor(raw / hop + 1/2), in integers
    return np.clip(pointers, 0, raw_frames - 1)
