"""Simulated edits of real recordings: EDLs like an editor's and exports perturbed like an editor's export.

Drawing is kept apart from applying (``draw_edl``/``draw_export`` sample parameters from a generator;
``apply_export`` is deterministic given them), and every draw comes from a generator keyed by
(seed, recording key), so the same seed gives the same edits whatever the order of the files.

An edit: the recording is cut at arbitrary sample positions into pieces of ``min_piece``-``max_piece``
seconds; walking them in order, each piece is dropped (p 0.15), kept, or kept and swapped with the next
(p 0.1); now and then (p 0.1) an earlier piece is played again. Pieces that end up contiguous in the
recording are merged into one segment, so every segment boundary is a real cut; an order that leaves the
recording whole is drawn again. One crossfade of 5-40 ms joins the segments.

An export: a gain of -6 to +3 dB, a spectral tilt of -2 to +2 dB per octave around 1 kHz, white noise
35-55 dB below the signal, and with probability 0.5 a lossy (Ogg Vorbis) round trip.
"""

from __future__ import annotations

import dataclasses
import io
import itertools

import numpy as np
import scipy.fft
import soundfile

from ..audio.audio_io import write_audio
from ..audio.edl import EditList

__all__ = ["ExportPerturbation", "apply_export", "draw_edl", "draw_export"]


_MAX_REDRAWS = 20


def _draw_order(n_pieces: int, rng: np.random.Generator) -> list[int]:
    """The pieces' edit order: drops, swaps and repeats as the module doc says."""
    order: list[int] = []
    i = 0
    while i < n_pieces:
        draw = rng.random()
        if draw < 0.15:
            i += 1
            continue
        if draw < 0.25 and i + 1 < n_pieces:
            order += [i + 1, i]
            i += 2
        else:
            order.append(i)
            i += 1
        if rng.random() < 0.1:
            order.append(int(rng.integers(0, order[-1] + 1)))
    return order or [int(rng.integers(0, n_pieces))]


def _merge_contiguous(pieces: list[tuple[float, float]], order: list[int]) -> list[list[float]]:
    """Segments of the pieces in ``order``, with pieces contiguous in the recording merged (no cut there)."""
    segments: list[list[float]] = []
    for index in order:
        start, end = pieces[index]
        if segments and segments[-1][1] == start:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return segments


def draw_edl(duration_seconds: float, rng: np.random.Generator, *, min_piece: float = 2.0,
             max_piece: float = 8.0, min_crossfade: float = 0.005, max_crossfade: float = 0.040) -> EditList:
    """A realistic EDL for a recording of ``duration_seconds`` (see the module doc for the recipe).

    >>> edl = draw_edl(60.0, np.random.default_rng(0))
    >>> 0.005 <= edl.crossfade <= 0.040 and all(0 <= s < e <= 60.0 for s, e in edl.segments)
    True
    """
    if not 0 < min_piece <= max_piece:
        raise ValueError(f"need 0 < min_piece <= max_piece (min_piece={min_piece}, max_piece={max_piece})")
    if duration_seconds < 2 * min_piece:
        raise ValueError(f"a recording of {duration_seconds:.2f} s is too short to edit in pieces of at least "
                         f"{min_piece} s (needs {2 * min_piece} s)")
    cuts = [0.0]
    while duration_seconds - cuts[-1] > max_piece:
        cuts.append(cuts[-1] + float(rng.uniform(min_piece, max_piece)))
    if duration_seconds - cuts[-1] < min_piece and len(cuts) > 1:
        cuts.pop()  # the last piece would be too short: it joins the one before
    if len(cuts) == 1:  # shorter than max_piece: still one cut
        cuts.append(float(rng.uniform(min_piece, duration_seconds - min_piece)))
    cuts.append(float(duration_seconds))
    pieces = list(itertools.pairwise(cuts))
    for _ in range(_MAX_REDRAWS):
        segments = _merge_contiguous(pieces, _draw_order(len(pieces), rng))
        if len(segments) > 1:  # an edit with no cut is not an edit: draw the order again
            break
    else:  # a recording of two or three pieces that kept coming out whole: swap its first two
        segments = _merge_contiguous(pieces, [1, 0, *range(2, len(pieces))])
    crossfade = float(rng.uniform(min_crossfade, max_crossfade))
    return EditList(tuple((s, e) for s, e in segments), round(crossfade, 6))


@dataclasses.dataclass(frozen=True)
class ExportPerturbation:
    """How an export differs from the plain rendering.

    ``gain_db``: level change; ``tilt_db_per_octave``: spectral tilt around 1 kHz; ``noise_db``: white
    noise level relative to the signal's RMS (negative); ``vorbis_quality``: ``None`` for no lossy round
    trip, else libsndfile's Vorbis compression level in ``[0, 1]`` (0 = best quality); ``noise_seed``: the
    noise's generator seed.
    """

    gain_db: float
    tilt_db_per_octave: float
    noise_db: float
    vorbis_quality: float | None
    noise_seed: int

    def as_meta(self) -> dict:
        return dataclasses.asdict(self)


def draw_export(rng: np.random.Generator) -> ExportPerturbation:
    """Draw an export's perturbation (ranges in the module doc)."""
    gain_db = round(float(rng.uniform(-6.0, 3.0)), 3)
    tilt = round(float(rng.uniform(-2.0, 2.0)), 3)
    noise_db = round(float(rng.uniform(-55.0, -35.0)), 3)
    quality = round(float(rng.uniform(0.3, 0.8)), 3) if rng.random() < 0.5 else None
    return ExportPerturbation(gain_db, tilt, noise_db, quality, int(rng.integers(0, 2**62)))


def _vorbis_round_trip(audio: np.ndarray, sample_rate: int, quality: float) -> np.ndarray:
    """``audio`` encoded to Ogg Vorbis in memory and decoded back, same length."""
    buffer = io.BytesIO()
    write_audio(buffer, audio, sample_rate, format="OGG", subtype="VORBIS", compression_level=quality)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    out = np.zeros(len(audio), dtype=np.float32)
    out[: min(len(audio), len(decoded))] = decoded[: len(audio)]
    return out


def apply_export(audio: np.ndarray, sample_rate: int, perturbation: ExportPerturbation) -> np.ndarray:
    """``audio`` ``(samples,)`` as the export ``perturbation`` describes; float32, same length, input untouched.

    >>> x = np.ones(1000, dtype=np.float32) * 0.1
    >>> y = apply_export(x, 8000, ExportPerturbation(-6.0, 0.0, -200.0, None, 0))
    >>> bool(np.allclose(y, x * 10 ** (-6 / 20), atol=1e-6))
    True
    """
    size = scipy.fft.next_fast_len(len(audio), real=True)  # zero-padded to a fast length: the filter's wrap is silence
    spectrum = scipy.fft.rfft(audio.astype(np.float64), n=size)
    freqs = scipy.fft.rfftfreq(size, d=1.0 / sample_rate)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain = 10 ** ((perturbation.gain_db + perturbation.tilt_db_per_octave * octaves) / 20)
    if perturbation.tilt_db_per_octave == 0.0:  # the exact scalar gain: numpy's array power can differ in the last bit
        gain[:] = 10 ** (perturbation.gain_db / 20)
    out = scipy.fft.irfft(spectrum * gain, n=size)[: len(audio)]
    rms = float(np.sqrt(np.mean(out ** 2))) if len(out) else 0.0
    noise = np.random.Generator(np.random.PCG64(perturbation.noise_seed)).standard_normal(len(out))
    out = (out + noise * rms * 10 ** (perturbation.noise_db / 20)).astype(np.float32)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 1.0:  # an export does not clip: the limiter of the editor
        out /= peak
    if perturbation.vorbis_quality is not None:
        out = _vorbis_round_trip(out, sample_rate, perturbation.vorbis_quality)
    return out
