"""Cost of each audio stage on one recording (default: 3 minutes of it), and optionally its preview PNGs.

Each stage is forced to fire on a re-edit of the recording (reedit itself on the recording), with the
draws a pipe would make for (seed, epoch 0, stage, key); the time is the median of ``--repeats`` runs of
``apply`` (drawing is microseconds) in this process, one thread. The log-mel of raw and edit (librosa,
the reference the on-the-fly mel stage is tested against) is timed the same way, for scale.

    python scripts/audio_stage_costs.py /work/data/realmusic/music/train/mozart-k155-movement1.flac \\
        --seconds 180 --preview docs/audio-augmentation
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from PIL import Image
from tqdm import tqdm

from streams.audio.mel import MelSettings, log_mel
from streams.stages.export import ExportStage
from streams.stages.reedit import ReeditStage
from streams.stages.stretch import SpeedStage, TempoStage
from streams.tools.audio_preview import recording_sample, render_audio_preview


def _stages() -> list[tuple[str, object]]:
    return [("reedit", ReeditStage()),
            ("export (no lossy)",
             ExportStage(lossy_probability=0.0, lowpass_probability=1.0, highpass_probability=1.0)),
            ("export + vorbis", ExportStage(lossy_probability=1.0, codec="vorbis")),
            ("export + mp3", ExportStage(lossy_probability=1.0, codec="mp3")),
            ("export + reverb", ExportStage(lossy_probability=0.0, reverb_probability=1.0)),
            ("speed", SpeedStage(probability=1.0)),
            ("tempo", TempoStage(probability=1.0))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", help="an audio file")
    parser.add_argument("--seconds", type=float, default=180.0, help="how much of it (default 180)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per stage; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preview", help="also write one PNG per stage (a 12 s excerpt) into this folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = MelSettings()
    sample = recording_sample(args.recording, settings, max_seconds=args.seconds)
    reedit = ReeditStage()
    edited = reedit.apply(sample, reedit.draw(sample, reedit.keyed_generator(args.seed, 0, "reedit", sample.key)))
    rows = []
    for name, stage in tqdm(_stages(), desc="stages"):
        source = sample if name == "reedit" else edited
        params = stage.draw(source, stage.keyed_generator(args.seed, 0, stage.name, source.key))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            stage.apply(source, params)
            times.append(time.perf_counter() - start)
        rows.append((name, statistics.median(times)))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        log_mel(edited.raw.numpy(), settings)
        log_mel(edited.edit.numpy(), settings)
        times.append(time.perf_counter() - start)
    rows.append(("log-mel raw + edit (librosa)", statistics.median(times)))
    print(f"{sample.key}: {sample.raw_seconds:.0f} s at {sample.sample_rate} Hz, edit {edited.edit_seconds:.0f} s, "
          f"median of {args.repeats}, 1 thread, load {os.getloadavg()[0]:.1f}")
    for name, seconds in rows:
        print(f"  {name:30s} {seconds * 1000:8.0f} ms  ({sample.raw_seconds / seconds:6.0f}x real time)")
    if args.preview:
        excerpt = recording_sample(args.recording, settings, start_seconds=30.0, max_seconds=12.0)
        stages = [("reedit", ReeditStage(piece_seconds=(1.0, 3.0))),
                  ("export", ExportStage(lossy_probability=1.0, lowpass_probability=1.0, reverb_probability=1.0)),
                  ("speed", SpeedStage(factor=(1.2, 1.2))), ("tempo", TempoStage(factor=(0.8, 0.8)))]
        paths = render_audio_preview(excerpt, stages, args.preview, seed=args.seed, chained=True, dpi=60)
        for path in paths:  # 64 colours: a quarter of the bytes, for PNGs kept in the repository
            Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)
        print(f"preview: {len(paths)} PNG(s) in {args.preview}")


if __name__ == "__main__":
    main()
