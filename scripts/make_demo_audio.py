"""Make the bundled demo audio shards (``shards/demo-audio/``) that ``pipelines/configs/audio.json`` reads.

Four 8-second synthetic recordings (``streams.tools.synthetic_audio``: harmonic notes with attacks and
releases, enough structure to point into), edit lists drawn by ``simulate-edits`` (one per recording,
half with a perturbed export), packed by ``pack-audio --store audio``. Deterministic: the same files every run.

    python scripts/make_demo_audio.py shards/demo-audio
"""

from __future__ import annotations

import os
import sys
import tempfile

import soundfile

from pipelines.cli import main
from streams.tools.synthetic_audio import synthetic_music

SAMPLE_RATE = 22050


def make(out_dir: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        music, src = os.path.join(work, "music"), os.path.join(work, "src")
        os.makedirs(music)
        for i in range(4):
            soundfile.write(os.path.join(music, f"demo-{i}.flac"), synthetic_music(8.0, seed=i), SAMPLE_RATE)
        code = main(["simulate-edits", music, src, "--per-track", "1", "--export-fraction", "0.5", "--seed", "0",
                     "--min-piece", "1.0", "--max-piece", "3.0", "--no-progress"])
        return code or main(["pack-audio", src, os.path.join(out_dir, "demo-audio-%06d.tar"), "--store", "audio",
                             "--max-samples", "2", "--overwrite", "--no-progress"])


if __name__ == "__main__":
    sys.exit(make(sys.argv[1] if len(sys.argv) > 1 else "shards/demo-audio"))
