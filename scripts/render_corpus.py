"""Render pieces of music21's bundled corpus to audio with FluidSynth: a real-music folder from registries only.

Picks pieces round-robin over composers (sorted paths, so the choice is the same on every machine),
writes each as MIDI with music21, renders it with ``fluidsynth`` and a General MIDI soundfont, and keeps
the pieces whose rendering lasts at least ``--min-seconds`` (longer ones are cut at ``--max-seconds``
with a 2 s fade-out). Every ``--val-every``-th kept piece goes to ``OUT/val/``, the others to
``OUT/train/``, so no recording is in both. ``OUT/pieces.json`` lists the pieces, their split, duration
and corpus path; ``--pieces`` renders exactly the pieces of such a list again (another soundfont:
an unseen condition for validation).

Needs: ``pip install music21``; ``apt-get install fluidsynth timgm6mb-soundfont`` (or another soundfont).

    python scripts/render_corpus.py /work/data/realmusic/music --count 64 --val-every 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile

# Composers whose pieces are mostly long enough (bach: chorales of ~30 s; folk collections: tunes of ~20 s).
COMPOSERS = ("beethoven", "haydn", "mozart", "schumann_robert", "schumann_clara", "monteverdi", "josquin",
             "joplin", "chopin", "schubert", "handel", "corelli", "cpebach", "verdi", "weber", "beach",
             "schoenberg", "webern", "liliuokalani", "luca", "lusitano", "ciconia", "palestrina")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


def candidate_pieces() -> list[tuple[str, str]]:
    """(key, corpus path) pairs, round-robin over composers, each composer's paths sorted."""
    from music21 import corpus

    per_composer = []
    for composer in COMPOSERS:
        paths = sorted(str(p) for p in corpus.getComposer(composer) if str(p).endswith(SCORE_SUFFIXES))
        per_composer.append([(piece_key(composer, p), p) for p in paths])
    ordered: dict[str, tuple[str, str]] = {}
    for piece in itertools.chain.from_iterable(itertools.zip_longest(*per_composer)):
        if piece is not None:
            ordered.setdefault(piece[0], piece)  # a .krn and an .mxl of one piece: keep the first
    return list(ordered.values())


def piece_key(composer: str, path: str) -> str:
    parts = pathlib.Path(path).parts
    inner = parts[parts.index(composer) + 1:]
    stem = "-".join([*inner[:-1], pathlib.Path(inner[-1]).stem])
    return f"{composer}-{stem}".replace(".", "_").replace(" ", "_")


def _synthesise(midi: str, soundfont: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """FluidSynth's rendering of ``midi``, float32 ``(samples, 2)``, read from its stdout and stopped after
    ``max_seconds`` + 1 s (a few corpus scores give MIDI files that play for hours)."""
    limit = int((max_seconds + 1.0) * sample_rate) * 4  # s16 stereo
    with subprocess.Popen(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(sample_rate), "-T", "raw", "-O", "s16",
                           "-F", "/dev/stdout", soundfont, midi], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as process:
        data = process.stdout.read(limit)
        process.kill()
    samples = np.frombuffer(data[: len(data) // 4 * 4], dtype="<i2").reshape(-1, 2)
    return samples.astype(np.float32) / 32768.0


def render_piece(key: str, path: str, out_path: str, soundfont: str, sample_rate: int,
                 min_seconds: float, max_seconds: float) -> tuple[str, float | None, str]:
    """Render one piece to ``out_path`` (FLAC); return (key, seconds or None when skipped, reason)."""
    from music21 import converter

    try:
        score = converter.parse(path)
        if hasattr(score, "scores"):  # an Opus: its first score
            score = score.scores[0]
        with tempfile.TemporaryDirectory() as tmp:
            midi = os.path.join(tmp, f"{key}.mid")
            score.write("midi", fp=midi)
            audio = _synthesise(midi, soundfont, sample_rate, max_seconds)
    except Exception as err:  # noqa: BLE001 - a score music21 cannot parse or write: counted, not fatal
        return key, None, f"{type(err).__name__}: {str(err)[:80]}"
    seconds = len(audio) / sample_rate
    if seconds < min_seconds:
        return key, None, f"too short ({seconds:.1f} s)"
    if seconds > max_seconds:
        audio = audio[: int(max_seconds * sample_rate)].copy()
        fade = int(2.0 * sample_rate)
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
        seconds = len(audio) / sample_rate
    peak = float(np.abs(audio).max())
    if peak > 0.99:  # keep it out of clipping, at the piece's own loudness otherwise
        audio *= 0.99 / peak
    soundfile.write(out_path, audio, sample_rate, subtype="PCM_16")
    return key, seconds, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/TimGM6mb.sf2")
    parser.add_argument("--count", type=int, default=64, help="pieces to keep")
    parser.add_argument("--val-every", type=int, default=4, help="every N-th kept piece goes to val/")
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--min-seconds", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=210.0)
    parser.add_argument("--pieces", help="pieces.json of an earlier run: render exactly its pieces (its splits)")
    parser.add_argument("--only-split", help="with --pieces: only the pieces of this split (train or val)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    if args.pieces:
        with open(args.pieces) as f:
            listed = [p for p in json.load(f)["pieces"] if args.only_split in (None, p["split"])]
        from music21 import common

        candidates = [(p["key"], os.path.join(str(common.getCorpusFilePath()), p["corpus_path"])) for p in listed]
        split_of = {p["key"]: p["split"] for p in listed}
        min_seconds = 0.0
    else:
        candidates = candidate_pieces()
        split_of = None
        min_seconds = args.min_seconds
    staging = os.path.join(args.out_dir, "_staging")
    os.makedirs(staging, exist_ok=True)
    kept: list[dict] = []
    skipped = 0
    progress = tqdm(total=args.count if split_of is None else len(candidates), unit="piece", desc="render")
    with ProcessPoolExecutor(args.workers) as pool:
        batch = args.workers * 4
        position = 0
        while position < len(candidates) and (split_of is not None or len(kept) < args.count):
            chunk = candidates[position: position + batch]
            position += batch
            futures = [pool.submit(render_piece, key, path, os.path.join(staging, f"{key}.flac"), args.soundfont,
                                   args.sample_rate, min_seconds, args.max_seconds) for key, path in chunk]
            for (key, path), future in zip(chunk, futures):
                key, seconds, _ = future.result()
                if seconds is None or (split_of is None and len(kept) >= args.count):
                    skipped += seconds is None
                    pathlib.Path(staging, f"{key}.flac").unlink(missing_ok=True)
                    continue
                if split_of is not None:
                    split = split_of[key]
                else:
                    split = "val" if len(kept) % args.val_every == args.val_every - 1 else "train"
                os.makedirs(os.path.join(args.out_dir, split), exist_ok=True)
                os.replace(os.path.join(staging, f"{key}.flac"), os.path.join(args.out_dir, split, f"{key}.flac"))
                corpus_path = path.split("/corpus/", 1)[-1]  # relative: music21's corpus folder differs by machine
                kept.append({"key": key, "split": split, "seconds": round(seconds, 3), "corpus_path": corpus_path})
                progress.update(1)
    progress.close()
    os.rmdir(staging)
    with open(os.path.join(args.out_dir, "pieces.json"), "w") as f:
        json.dump({"soundfont": args.soundfont, "sample_rate": args.sample_rate, "pieces": kept}, f, indent=1)
    seconds = [p["seconds"] for p in kept]
    print(f"render: {len(kept)} pieces ({sum(p['split'] == 'train' for p in kept)} train, "
          f"{sum(p['split'] == 'val' for p in kept)} val), {min(seconds):.0f}-{max(seconds):.0f} s, "
          f"{sum(seconds) / 60:.1f} min in all; {skipped} skipped")
    return 0 if len(kept) == (args.count if split_of is None else len(candidates)) else 1


if __name__ == "__main__":
    sys.exit(main())
