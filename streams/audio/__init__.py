"""Audio core: decoding (``audio_io``), EDLs (``edl``), log-mels (``mel``), the edit -> raw map
(``timeline``) and :class:`~streams.audio.sample.AudioSample`. ``audio_io`` and ``mel.log_mel`` need the
``audio`` extra (soundfile, soxr, librosa), so nothing here imports them eagerly."""
