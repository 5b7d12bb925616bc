"""Export: what an editor's export chain does to the edit, applied to the edit only, never shifting it in time.

In order: one zero-phase filter (gain, a spectral tilt around 1 kHz, optional 4th-order Butterworth-magnitude
low-pass and high-pass, all as a real gain per FFT bin, so no phase and no delay), optional reverb (an
impulse response whose direct path is at sample 0: generated, a unit impulse plus a decaying noise tail,
or read from files and cut at their peak), noise at an SNR drawn from a range (white, or a stretch of a
real recording from a folder), a peak limiter (the whole edit scaled down if it clips), and an optional
lossy round trip through libsndfile (Ogg Vorbis, or MP3 when this libsndfile writes it: both decode
aligned, lag 0, length kept). Nothing moves content in time and the length is kept, so ``edit_map`` stays
true and is not touched.

Files are checked when the settings are made: a noise folder with no readable recording, an impulse
response file that is empty or longer than ``max_impulse_seconds``, or ``codec="mp3"`` on a libsndfile
without an MP3 encoder is a :class:`~streams.checks.FieldError` naming the field and the file.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from typing import Any

import numpy as np
import torch

from ..audio.sample import AudioSample
from ..checks import FieldError, check_choice, check_float, check_float_range, check_probability
from ..pipe import pipe_method
from ..sample import SampleError
from .audio_augment import AudioAugmentStage

__all__ = ["CODECS", "ExportSettings", "ExportStage", "add_noise", "apply_export_chain", "draw_export_chain",
           "export_filter", "generated_impulse", "lossy_round_trip", "reverberate"]

CODECS = {"vorbis": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
"""Lossy codecs by name: libsndfile's (format, subtype)."""

_BUTTERWORTH_ORDER = 4


def export_filter(audio: np.ndarray, sample_rate: int, *, gain_db: float = 0.0, tilt_db_per_octave: float = 0.0,
                  lowpass_hz: float | None = None, highpass_hz: float | None = None) -> np.ndarray:
    """``audio`` ``(n,)`` through a zero-phase filter: float32 ``(n,)``, the input untouched.

    The response is real (no phase, so no delay): ``gain_db`` plus ``tilt_db_per_octave`` per octave
    from 1 kHz (frequencies under 20 Hz count as 20 Hz), times 4th-order Butterworth magnitudes for
    ``lowpass_hz`` / ``highpass_hz`` (``None``: none). The signal is zero-padded by 4096 samples before the
    FFT so the filter's two-sided response does not wrap around.

    >>> x = np.ones(1000, dtype=np.float32) * 0.1
    >>> bool(np.allclose(export_filter(x, 8000, gain_db=-6.0), x * 10 ** (-6 / 20), atol=1e-6))
    True
    """
    import scipy.fft  # the audio extra

    audio = np.asarray(audio, dtype=np.float32)
    scale = np.float32(10 ** (gain_db / 20))
    if not tilt_db_per_octave and lowpass_hz is None and highpass_hz is None:
        return audio * scale  # a gain alone needs no FFT
    size = scipy.fft.next_fast_len(len(audio) + 4096, real=True)
    freqs = scipy.fft.rfftfreq(size, d=1.0 / sample_rate).astype(np.float32)
    gain = np.full(len(freqs), scale, dtype=np.float32)
    if tilt_db_per_octave:  # 10 ** (tilt * log2(f / 1 kHz) / 20) = (f / 1 kHz) ** (tilt / (20 log10 2))
        gain *= (np.maximum(freqs, 20.0) / 1000.0) ** np.float32(tilt_db_per_octave / (20 * np.log10(2)))
    with np.errstate(divide="ignore", over="ignore"):
        if lowpass_hz is not None:
            gain /= np.sqrt(1 + (freqs / np.float32(lowpass_hz)) ** (2 * _BUTTERWORTH_ORDER))
        if highpass_hz is not None:
            gain /= np.sqrt(1 + (np.float32(highpass_hz) / freqs) ** (2 * _BUTTERWORTH_ORDER))
    spectrum = scipy.fft.rfft(audio, n=size)  # float32 in, complex64 out: single precision, ample for audio
    spectrum *= gain
    return scipy.fft.irfft(spectrum, n=size)[: len(audio)].astype(np.float32, copy=False)


def generated_impulse(sample_rate: int, rt60_seconds: float, wet_db: float, seed: int) -> np.ndarray:
    """A room-like impulse response, float32 ``(round(rt60 * sample_rate) + 1,)``: 1 at sample 0 (the direct
    path), then Gaussian noise decaying 60 dB over ``rt60_seconds``, ``wet_db`` below the direct path."""
    length = max(1, round(rt60_seconds * sample_rate))
    t = np.arange(1, length + 1) / sample_rate
    tail = np.random.Generator(np.random.PCG64(seed)).standard_normal(length) * 10 ** (-3 * t / rt60_seconds)
    tail *= 10 ** (wet_db / 20) / max(float(np.sqrt(np.mean(tail ** 2))), 1e-12) / np.sqrt(length)
    return np.concatenate([[1.0], tail]).astype(np.float32)


def reverberate(audio: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """``audio`` ``(n,)`` convolved with ``impulse`` ``(k,)`` whose direct path is sample 0, cut to ``(n,)``
    (the tail past the end is dropped): content stays where it was."""
    import scipy.signal  # the audio extra

    return scipy.signal.fftconvolve(audio, impulse, mode="full")[: len(audio)].astype(np.float32)


def _aligned_impulse(path: str, sample_rate: int, max_seconds: float, field: str) -> np.ndarray:
    """An impulse response file, mono at ``sample_rate``, cut at its peak (the direct path) and scaled to 1 there."""
    from ..audio.audio_io import read_audio, resample  # the audio extra

    try:
        audio, rate = read_audio(path)
    except SampleError as err:
        raise FieldError(field, f"{field}: {err}; an impulse response must be a readable audio file") from err
    if len(audio) / rate > max_seconds:
        raise FieldError(field, f"{field}: {path} lasts {len(audio) / rate:.1f} s, longer than max_impulse_seconds "
                                f"({max_seconds} s); is it an impulse response? trim it or raise the limit")
    audio = resample(audio, rate, sample_rate)
    peak = int(np.argmax(np.abs(audio)))
    if audio[peak] == 0:
        raise FieldError(field, f"{field}: {path} is silent; an impulse response needs a direct path")
    return (audio[peak:] / audio[peak]).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio`` ``(n,)`` plus ``noise`` ``(n,)`` scaled to ``snr_db`` below ``audio``'s RMS; float32 ``(n,)``."""
    signal_rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    noise_rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    if signal_rms == 0.0 or noise_rms == 0.0:
        return audio.astype(np.float32, copy=True)
    return (audio + noise * (signal_rms / noise_rms * 10 ** (-snr_db / 20))).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _noise_recording(path: str, sample_rate: int) -> np.ndarray:
    """A noise recording, mono at ``sample_rate``, decoded once per process (read-only)."""
    from ..audio.audio_io import read_audio, resample  # the audio extra

    audio, rate = read_audio(path)
    out = resample(audio, rate, sample_rate)
    out.setflags(write=False)
    return out


def _noise_stretch(path: str, sample_rate: int, length: int, start_fraction: float) -> np.ndarray:
    """``length`` samples of a noise recording from ``start_fraction`` of its length on, looped if shorter."""
    recording = _noise_recording(path, sample_rate)
    start = int(start_fraction * len(recording))
    return np.resize(np.roll(recording, -start), length)


def lossy_round_trip(audio: np.ndarray, sample_rate: int, codec: str, quality: float) -> np.ndarray:
    """``audio`` ``(n,)`` encoded with ``codec`` (:data:`CODECS`) at libsndfile compression level ``quality``
    (0 best, 1 smallest) in memory and decoded back: float32 ``(n,)`` (padded or cut to ``n``)."""
    import soundfile

    from ..audio.audio_io import write_audio  # the audio extra

    container, subtype = CODECS[codec]
    buffer = io.BytesIO()
    write_audio(buffer, audio, sample_rate, format=container, subtype=subtype, compression_level=quality)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    out = np.zeros(len(audio), dtype=np.float32)
    out[: min(len(audio), len(decoded))] = decoded[: len(audio)]
    return out


def _check_codec(codec: str) -> str:
    """``codec`` if this libsndfile can encode it, else a ``FieldError`` on ``codec`` saying what can."""
    import soundfile

    container, subtype = CODECS[codec]
    try:
        with soundfile.SoundFile(io.BytesIO(), "w", samplerate=22050, channels=1, format=container,
                                 subtype=subtype) as f:
            f.write(np.zeros(1152, dtype=np.float32))
    except Exception as err:  # libsndfile reports a missing encoder as a LibsndfileError/RuntimeError
        raise FieldError("codec", f"codec {codec!r}: this libsndfile ({soundfile.__libsndfile_version__}) cannot "
                                  f"write {container}/{subtype} ({err}); use codec 'vorbis' or set lossy_probability "
                                  "to 0") from err
    return codec


def _audio_files(folder: str, field: str) -> list[str]:
    from ..audio.audio_io import AUDIO_SUFFIXES  # the audio extra

    if not os.path.isdir(folder):
        raise FieldError(field, f"{field}: {folder!r} is not a folder; give a folder of audio files")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.lower().endswith(AUDIO_SUFFIXES))


def _readable_noise(folder: str, field: str) -> tuple[str, ...]:
    """The audio files in ``folder`` whose headers libsndfile reads; ``FieldError`` naming it if there are none."""
    from ..audio.audio_io import audio_info  # the audio extra

    readable, problems = [], []
    for path in _audio_files(folder, field):
        try:
            audio_info(path)
            readable.append(path)
        except SampleError as err:
            problems.append(str(err))
    if not readable:
        tried = f": {'; '.join(problems[:3])}" if problems else " (no file ending in an audio suffix)"
        raise FieldError(field, f"{field}: no readable noise recording in {folder!r}{tried}")
    return tuple(readable)


def _impulse_files(folder: str, field: str, max_seconds: float) -> tuple[str, ...]:
    """The impulse response files in ``folder``, each checked: readable, not empty, at most ``max_seconds``."""
    from ..audio.audio_io import audio_info  # the audio extra

    paths = _audio_files(folder, field)
    if not paths:
        raise FieldError(field, f"{field}: no audio file in {folder!r}; give a folder of impulse responses")
    for path in paths:
        try:
            info = audio_info(path)
        except SampleError as err:
            raise FieldError(field, f"{field}: {err}; remove it or give a readable impulse response") from err
        if info.seconds > max_seconds:
            raise FieldError(field, f"{field}: {path} lasts {info.seconds:.1f} s, longer than max_impulse_seconds "
                                    f"({max_seconds} s); is it an impulse response? trim it or raise the limit")
    return tuple(paths)


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """Settings of :class:`ExportStage`; ranges are ``[low, high]``, drawn uniformly; bad values are
    ``FieldError`` naming the field (folders and the codec are checked here, see the module docstring).

    Args:
        probability: chance to export a sample, in [0, 1].
        gain_db: level change, dB. tilt_db_per_octave: spectral tilt around 1 kHz.
        lowpass_probability, lowpass_hz: chance of a low-pass and its corner range (Hz, > 0).
        highpass_probability, highpass_hz: the same for a high-pass.
        noise_probability, snr_db: chance of added noise and its signal-to-noise ratio range, dB.
        noise_folder: a folder of noise recordings (``None``: white noise only).
        real_noise_probability: with a folder, chance the noise is a stretch of one of its recordings.
        lossy_probability, codec, lossy_quality: chance of a lossy round trip, ``"vorbis"`` or ``"mp3"``,
            and libsndfile's compression level range in [0, 1].
        reverb_probability: chance of reverb. impulse_folder: impulse response files (``None``: generated
            ones with ``rt60_seconds`` and ``reverb_wet_db``, the tail's level under the direct path).
        max_impulse_seconds: longest impulse response file accepted.
    """

    probability: float = 1.0
    gain_db: tuple[float, float] = (-6.0, 3.0)
    tilt_db_per_octave: tuple[float, float] = (-2.0, 2.0)
    lowpass_probability: float = 0.2
    lowpass_hz: tuple[float, float] = (5000.0, 10000.0)
    highpass_probability: float = 0.2
    highpass_hz: tuple[float, float] = (20.0, 120.0)
    noise_probability: float = 1.0
    snr_db: tuple[float, float] = (35.0, 55.0)
    noise_folder: str | None = None
    real_noise_probability: float = 0.5
    lossy_probability: float = 0.5
    codec: str = "vorbis"
    lossy_quality: tuple[float, float] = (0.3, 0.8)
    reverb_probability: float = 0.0
    impulse_folder: str | None = None
    rt60_seconds: tuple[float, float] = (0.2, 0.8)
    reverb_wet_db: tuple[float, float] = (-18.0, -6.0)
    max_impulse_seconds: float = 10.0
    noise_files: tuple[str, ...] = dataclasses.field(default=(), init=False, repr=False, compare=False)
    impulse_files: tuple[str, ...] = dataclasses.field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        for name in ("probability", "lowpass_probability", "highpass_probability", "noise_probability",
                     "real_noise_probability", "lossy_probability", "reverb_probability"):
            set_field(self, name, check_probability(getattr(self, name), name))
        for name in ("gain_db", "tilt_db_per_octave", "snr_db", "reverb_wet_db"):
            set_field(self, name, check_float_range(getattr(self, name), name))
        for name in ("lowpass_hz", "highpass_hz", "rt60_seconds"):
            set_field(self, name, check_float_range(getattr(self, name), name, minimum=0.0, include_minimum=False))
        set_field(self, "lossy_quality", check_float_range(self.lossy_quality, "lossy_quality", minimum=0.0,
                                                           maximum=1.0))
        set_field(self, "max_impulse_seconds", check_float(self.max_impulse_seconds, "max_impulse_seconds",
                                                           include_minimum=False))
        set_field(self, "codec", check_choice(self.codec, "codec", tuple(CODECS)))
        if self.lossy_probability > 0:
            _check_codec(self.codec)
        if self.noise_folder is not None:
            set_field(self, "noise_files", _readable_noise(self.noise_folder, "noise_folder"))
        if self.impulse_folder is not None:
            set_field(self, "impulse_files", _impulse_files(self.impulse_folder, "impulse_folder",
                                                            self.max_impulse_seconds))


def _uniform(generator: np.random.Generator, bounds: tuple[float, float]) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * float(generator.random())


def draw_export_chain(settings: ExportSettings, generator: np.random.Generator) -> dict[str, Any]:
    """The parameters of one export (JSON-friendly): ``gain_db``, ``tilt_db_per_octave``, ``lowpass_hz`` and
    ``highpass_hz`` (``None`` when off), ``reverb``, ``noise`` and ``lossy`` (each a dict or ``None``)."""
    s = settings
    params: dict[str, Any] = {"gain_db": _uniform(generator, s.gain_db),
                              "tilt_db_per_octave": _uniform(generator, s.tilt_db_per_octave)}
    params["lowpass_hz"] = _uniform(generator, s.lowpass_hz) if generator.random() < s.lowpass_probability else None
    params["highpass_hz"] = (_uniform(generator, s.highpass_hz) if generator.random() < s.highpass_probability
                             else None)
    reverb = None
    if generator.random() < s.reverb_probability:
        if s.impulse_files:
            reverb = {"file": s.impulse_files[int(generator.integers(len(s.impulse_files)))]}
        else:
            reverb = {"rt60_seconds": _uniform(generator, s.rt60_seconds),
                      "wet_db": _uniform(generator, s.reverb_wet_db), "seed": int(generator.integers(2**62))}
    params["reverb"] = reverb
    noise = None
    if generator.random() < s.noise_probability:
        noise = {"snr_db": _uniform(generator, s.snr_db)}
        if s.noise_files and generator.random() < s.real_noise_probability:
            noise |= {"file": s.noise_files[int(generator.integers(len(s.noise_files)))],
                      "start_fraction": float(generator.random())}
        else:
            noise["seed"] = int(generator.integers(2**62))
    params["noise"] = noise
    params["lossy"] = ({"codec": s.codec, "quality": _uniform(generator, s.lossy_quality)}
                       if generator.random() < s.lossy_probability else None)
    return params


def apply_export_chain(audio: np.ndarray, sample_rate: int, params: dict[str, Any], *,
                       max_impulse_seconds: float = 10.0) -> np.ndarray:
    """``audio`` ``(n,)`` through the export ``params`` describe (:func:`draw_export_chain`): float32 ``(n,)``,
    deterministic given ``params``, the input untouched, nothing shifted in time.

    >>> x = np.sin(np.arange(4000) / 5).astype(np.float32) * 0.5
    >>> y = apply_export_chain(x, 8000, {"gain_db": -6.0, "tilt_db_per_octave": 0.0, "lowpass_hz": None,
    ...                                  "highpass_hz": None, "reverb": None, "noise": None, "lossy": None})
    >>> bool(np.allclose(y, x * 10 ** (-6 / 20), atol=1e-5))
    True
    """
    out = export_filter(audio, sample_rate, gain_db=params["gain_db"], tilt_db_per_octave=params["tilt_db_per_octave"],
                        lowpass_hz=params["lowpass_hz"], highpass_hz=params["highpass_hz"])
    reverb = params.get("reverb")
    if reverb is not None:
        impulse = (_aligned_impulse(reverb["file"], sample_rate, max_impulse_seconds, "impulse_folder")
                   if "file" in reverb else
                   generated_impulse(sample_rate, reverb["rt60_seconds"], reverb["wet_db"], reverb["seed"]))
        out = reverberate(out, impulse)
    noise = params.get("noise")
    if noise is not None:
        if "file" in noise:
            stretch = _noise_stretch(noise["file"], sample_rate, len(out), noise["start_fraction"])
        else:
            stretch = np.random.Generator(np.random.PCG64(noise["seed"])).standard_normal(len(out), dtype=np.float32)
        out = add_noise(out, stretch, noise["snr_db"])
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 1.0:  # an export does not clip: the editor's limiter
        out = out / peak
    lossy = params.get("lossy")
    if lossy is not None:
        out = lossy_round_trip(out, sample_rate, lossy["codec"], lossy["quality"])
    return out


@pipe_method("export")
class ExportStage(AudioAugmentStage):
    """Pass each sample's edit through a drawn export chain (see the module docstring); the recording and
    ``edit_map`` are untouched, since nothing in the chain moves content in time or changes the length.

    Params recorded: :func:`draw_export_chain`'s dict. Cost: two FFTs of the edit for the filter, one
    FFT convolution for reverb, an encode and decode for the lossy step (the most expensive part).
    """

    name = "export"
    settings_class = ExportSettings

    def draw(self, sample: AudioSample, generator: np.random.Generator) -> dict[str, Any]:
        return draw_export_chain(self.settings, generator)

    def apply(self, sample: AudioSample, params: dict[str, Any]) -> AudioSample:
        out = apply_export_chain(sample.edit.numpy(), sample.sample_rate, params,
                                 max_impulse_seconds=self.settings.max_impulse_seconds)
        return sample.replace(edit=torch.from_numpy(out))
