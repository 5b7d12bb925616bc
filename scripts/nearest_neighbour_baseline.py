"""The parameter-free pointer baseline on shards: per-band standardised cosine, argmax over raw frames.

Prints, per shard folder, samples, recordings, frame ranges, edit forms and the share of pointers the
baseline gets exactly right and within 2 frames (a measurement, for README and notes figures).

    python scripts/nearest_neighbour_baseline.py /work/data/realmusic/shards/train /work/data/realmusic/shards/val
"""

from __future__ import annotations

import argparse
import collections
import glob
import os

import torch

from streams import Pipe


def _standardised(mel: torch.Tensor) -> torch.Tensor:
    """Each band to zero mean and unit variance over time, then each frame to unit length: ``(n_mels, T)``."""
    mel = (mel - mel.mean(1, keepdim=True)) / (mel.std(1, keepdim=True) + 1e-5)
    return mel / mel.norm(dim=0, keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders of *.tar shards")
    args = parser.parse_args()
    for folder in args.folders:
        urls = sorted(glob.glob(os.path.join(folder, "*.tar")))
        exact = near = total = 0
        raw_frames, edit_frames, recordings = [], [], set()
        forms: collections.Counter[str] = collections.Counter()
        for sample in Pipe.from_shards(urls, shuffle_shards=False, mel_dtype="float32"):
            raw, edit = _standardised(sample.raw_mel), _standardised(sample.edit_mel)
            guess = torch.cat([(edit[:, i: i + 2000].T @ raw).argmax(1) for i in range(0, edit.shape[1], 2000)])
            exact += int((guess == sample.pointers).sum())
            near += int(((guess - sample.pointers).abs() <= 2).sum())
            total += len(sample.pointers)
            raw_frames.append(sample.raw_mel.shape[1])
            edit_frames.append(sample.edit_mel.shape[1])
            recordings.add(sample.meta.get("recording", sample.key))
            forms[sample.meta.get("edit_form", "?")] += 1
        print(f"{folder}: {len(raw_frames)} samples, {len(recordings)} recordings, raw frames "
              f"{min(raw_frames)}-{max(raw_frames)}, edit frames {min(edit_frames)}-{max(edit_frames)}, "
              f"{dict(forms)}; nearest neighbour exact {exact / total:.3f}, within 2 frames {near / total:.3f}")


if __name__ == "__main__":
    main()
