"""Audio path against mel path: samples/s in one process (what one DataLoader worker delivers) on
the first 4 recordings of a source folder, packed both ways (``pack-audio --store audio`` and
``--store mel``); median of 3 epochs.

    python scripts/audio_path_rate.py /work/data/realmusic/src/train
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import time
from collections.abc import Callable

import torch

from streams import Pipe
from streams.tools.audio_pack import pack_audio

PIPES: dict[str, Callable[[str], Pipe]] = {
    "audio -> mels (torch)": lambda urls: Pipe.from_audio_shards(urls, shuffle_shards=False).mels(backend="torch"),
    "audio -> mels (librosa)": lambda urls: Pipe.from_audio_shards(urls, shuffle_shards=False).mels(),
    "audio -> reedit -> export, no lossy step -> mels (torch)": lambda urls: Pipe.from_audio_shards(
        urls, shuffle_shards=False).reedit().export(lossy_probability=0.0).mels(backend="torch"),
    "audio -> reedit -> export, Vorbis half the time -> mels (torch)": lambda urls: Pipe.from_audio_shards(
        urls, shuffle_shards=False).reedit().export().mels(backend="torch"),
}


def rate(pipe: Pipe, epochs: int = 3) -> float:
    """Median samples/s over ``epochs`` passes."""
    rates = []
    for epoch in range(epochs):
        pipe.set_epoch(epoch)
        start = time.perf_counter()
        count = sum(1 for _ in pipe)
        rates.append(count / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def main(src: str) -> None:
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="audio-path-rate-")
    keys = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(src, "*.edl.json"))})[:4]
    os.makedirs(os.path.join(work, "src"))
    for key in keys:
        for path in glob.glob(os.path.join(src, f"{key}.*")):
            os.symlink(os.path.abspath(path), os.path.join(work, "src", os.path.basename(path)))
    for store in ("audio", "mel"):
        pack_audio(os.path.join(work, "src"), os.path.join(work, store, "t-%06d.tar"), store=store, max_samples=1,
                   progress=False)
    last = f"{len(keys) - 1:06d}"
    urls = {store: os.path.join(work, store, f"t-{{000000..{last}}}.tar") for store in ("audio", "mel")}
    seconds = [round(s.raw_mel.shape[1] * 256 / 22050) for s in Pipe.from_shards(urls["mel"], shuffle_shards=False)]
    mel = rate(Pipe.from_shards(urls["mel"], shuffle_shards=False, mel_dtype="float32"))
    print(f"{len(keys)} recordings of {seconds} s; mel shards: {mel:.1f} samples/s")
    for name, make in PIPES.items():
        audio = rate(make(urls["audio"]))
        print(f"{name}: {audio:.2f} samples/s ({mel / audio:.0f}x slower than mel shards)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/data/realmusic/src/train")
