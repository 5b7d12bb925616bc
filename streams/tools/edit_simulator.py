"""Simulated edits of real recordings: EDLs like an editor's and exports perturbed like an editor's export.

Drawing is kept apart from applying (``draw_edl``/``draw_export`` sample parameters from a generator;
``apply_export`` is deterministic given them), and every draw comes from a generator keyed by
(seed, recording key), so the same seed gives the same edits whatever the order of the files.

An edit: :func:`streams.audio.edits.draw_edl` (the rules live in the audio core, where the re-edit
stage uses them too).

An export: a gain of -6 to +3 dB, a spectral tilt of -2 to +2 dB per octave around 1 kHz, white noise
35-55 dB below the signal, and with probability 0.5 a lossy (Ogg Vorbis) round trip.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import scipy.fft
import soundfile

from ..audio.audio_io import write_audio
from ..audio.edits import draw_edl

__all__ = ["ExportPerturbation", "apply_export", "draw_edl", "draw_export"]


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
