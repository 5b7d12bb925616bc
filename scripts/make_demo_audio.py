"""Make the bundled demo audio shards (``shards/demo-audio/``) that ``pipelines/configs/audio.json`` reads.

Four 8-second synthetic recordings (harmonic notes with attacks and releases, enough structure to
point into), edit lists drawn by ``simulate-edits`` (one per recording, half with a perturbed
export), packed by ``pack-audio --store audio``. Deterministic: the same files every run.

    python scripts/make_demo_audio.py shards/demo-audio
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import soundfile

from pipelines.cli import main

SAMPLE_RATE = 22050


def recording(seconds: float, seed: int) -> np.ndarray:
    """Notes of 0.3-0.6 s: a bright harmonic tone, 40 ms attack, decay, 100 ms release into the next."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SAMPLE_RATE))
    position = 0
    while position < len(out):
        length = int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
        t = np.arange(min(length + int(0.2 * SAMPLE_RATE), len(out) - position)) / SAMPLE_RATE
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        note = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, int(SAMPLE_RATE / 2.5 / f0)))
        envelope = np.exp(-3 * t) * np.minimum(1, t * 25) * np.clip((t[-1] - t) * 10, 0, 1)
        out[position: position + len(t)] += 0.2 * note * envelope
        position += length
    return (out + 0.001 * rng.standard_normal(len(out))).astype(np.float32)


def make(out_dir: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        music, src = os.path.join(work, "music"), os.path.join(work, "src")
        os.makedirs(music)
        for i in range(4):
            soundfile.write(os.path.join(music, f"demo-{i}.flac"), recording(8.0, seed=i), SAMPLE_RATE)
        code = main(["simulate-edits", music, src, "--per-track", "1", "--export-fraction", "0.5", "--seed", "0",
                     "--min-piece", "1.0", "--max-piece", "3.0", "--no-progress"])
        return code or main(["pack-audio", src, os.path.join(out_dir, "demo-audio-%06d.tar"), "--store", "audio",
                             "--max-samples", "2", "--overwrite", "--no-progress"])


if __name__ == "__main__":
    sys.exit(make(sys.argv[1] if len(sys.argv) > 1 else "shards/demo-audio"))
