"""Tools: invariant checks, the simulated editor, packing, shard checks and previews; real audio in
(``audio_source``, ``audio_pack``, ``edit_simulator``, ``simulate_folder``: these need the ``audio``
extra, so nothing here imports them eagerly; the audio core they build on, decoding, EDLs and mels,
is :mod:`streams.audio`)."""
