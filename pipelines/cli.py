"""Command line: ``python -m pipelines COMMAND ...`` (run, pack, pack-audio, simulate-edits, check, generate,
preview, info, bench, validate).

Each command parses its arguments, calls the library, and prints a short summary. No logic lives
only here. Help texts are plain text (argparse prints them as written), and every command's help
ends with an example (:data:`EXAMPLES`).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from streams.reading.decode import decode_sample
from streams.reading.tar_records import ReadLimits, Record, ShardReadError
from streams.sample import SampleError
from streams.tools.shard_check import check_shards
from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import EditStyle, synthetic_sample

from .build import load_config
from .config import ConfigError
from .model import SIZES
from .run import StallError
from .validation.train import TrainSettings

__all__ = ["main"]

_TRAIN = TrainSettings()
"""``validate``'s defaults for what every arm shares: the settings' own, stated once."""


def _run(args: argparse.Namespace) -> int:
    from .run import run_pipeline

    config = load_config(args.config)
    summary = run_pipeline(config, epochs=args.epochs, num_workers=args.workers, limit=args.limit,
                           progress=not args.no_progress, stall_timeout=args.stall_timeout)
    print("\n".join(summary.lines()))
    return 0


def _pack(args: argparse.Namespace) -> int:
    from streams.tools.sample_folder import iter_sample_folder

    problems: list[str] = []

    def checked(desc: str):
        for key, members in tqdm(iter_sample_folder(args.src_dir), unit="sample", desc=desc):
            try:
                if isinstance(members, SampleError):
                    raise members
                decode_sample(Record(key=key, index=0, members=members, url=args.src_dir))
            except SampleError as err:
                problems.append(str(err))
                continue
            yield key, members

    if not args.skip_bad:  # a first pass keeps nothing but the problems: no shard is written unless all are good
        for _ in checked("check"):
            pass
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"pack: {len(problems)} bad sample(s), nothing written; fix them or pass --skip-bad",
                  file=sys.stderr)
            return 1
    index = write_shards(checked("pack"), args.out_pattern, max_samples=args.max_samples,
                         max_bytes=args.max_mb * 1e6, overwrite=args.overwrite)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    written = sum(e["samples"] for e in index.values())
    total_mb = sum(e["bytes"] for e in index.values()) / 1e6
    print(f"pack: {written} samples into {len(index)} shard(s), {total_mb:,.1f} MB; {len(problems)} skipped")
    return 0


def _check(args: argparse.Namespace) -> int:
    shards = samples = 0
    reasons: collections.Counter[str] = collections.Counter()
    limits = ReadLimits(max_array_bytes=max(1, int(args.max_array_mb * 2**20)),
                        max_meta_bytes=max(1, int(args.max_meta_mb * 2**20)), stall_timeout=args.stall_timeout)
    for result in tqdm(check_shards(args.shards, mel_dtype=args.mel_dtype, limits=limits), unit="shard",
                       desc="check", disable=args.no_progress):
        shards += 1
        samples += result.samples
        for problem in result.problems:
            reasons[problem.reason] += 1
            tqdm.write(f"{problem.reason}: {problem}")
    bad = sum(reasons.values())
    by_reason = f" ({', '.join(f'{reason} {n}' for reason, n in sorted(reasons.items()))})" if bad else ""
    print(f"check: {shards} shard(s), {samples} sample(s) read, {bad} problem(s){by_reason}")
    return 1 if bad else 0


def _generate(args: argparse.Namespace) -> int:
    import numpy as np

    from streams.seeding import derive_seed

    rng = np.random.Generator(np.random.PCG64(derive_seed("generate", args.seed)))
    lengths = rng.integers(args.min_frames, args.max_frames + 1, size=args.count)
    dtype = {"float32": torch.float32, "float16": torch.float16}[args.dtype]
    pointer_dtype = {"int64": torch.int64, "int32": torch.int32}[args.pointer_dtype]

    def samples():
        for i, n in enumerate(tqdm(lengths, unit="sample", desc="generate")):
            sample = synthetic_sample(f"{args.prefix}-{i:06d}", seed=args.seed, n_mels=args.n_mels,
                                      raw_frames=int(n), style=EditStyle(), dtype=dtype)
            yield sample.replace(pointers=sample.pointers.to(pointer_dtype))

    index = write_shards(samples(), args.out_pattern, max_samples=args.max_samples, max_bytes=args.max_mb * 1e6,
                         overwrite=args.overwrite)
    total_mb = sum(e["bytes"] for e in index.values()) / 1e6
    print(f"generate: {args.count} samples into {len(index)} shard(s), {total_mb:,.1f} MB")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from streams import Pipe
    from streams.stages.augment import AugmentStage
    from streams.tools.preview import render_overview, render_preview

    from .build import build_stages

    config = load_config(args.config)
    stages = build_stages(config)
    source = Pipe(stages[:1], seed=config.seed)
    sample = next(itertools.islice(source, args.index, None), None)
    if sample is None:
        print(f"preview: the shards hold fewer than {args.index + 1} samples", file=sys.stderr)
        return 1
    augmentations = [(stage.name, stage) for stage in stages[1:] if isinstance(stage, AugmentStage)]
    if not augmentations:
        print("preview: no augmentation is enabled in this config", file=sys.stderr)
        return 1
    paths = render_preview(sample, augmentations, args.out, seed=config.seed)
    overview = render_overview(sample, augmentations, f"{args.out}/overview.png", seed=config.seed)
    print(f"preview: sample {sample.key!r}, {len(augmentations)} augmentation(s), {len(paths)} PNG(s) and "
          f"{overview.name} (every stage in one grid) in {args.out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from streams.reading.shardlist import expand_shard_urls
    from streams.tools.shard_info import dumps, shard_stats, summarize

    urls = expand_shard_urls(args.shards)
    info = summarize(shard_stats(url) for url in tqdm(urls, unit="shard", desc="info", disable=args.no_progress))
    print(dumps(info) if args.json else "\n".join(f"info: {line}" if i == 0 else f"  {line}"
                                                   for i, line in enumerate(info.lines())))
    damaged = {url: shard.damage for url, shard in zip(urls, info.shards) if shard.damage}
    for url, reason in damaged.items():
        print(f"info: {url}: {reason} (the figures leave out what it could not read; see `check`)", file=sys.stderr)
    return 1 if damaged else 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import BenchSettings, render_report, run_benchmarks, write_json

    options = {name: value for name, value in vars(args).items()
               if name not in ("command", "handler", "quick", "json", "no_progress")}
    settings = BenchSettings.from_options(quick=args.quick, progress=not args.no_progress, **options)
    result = run_benchmarks(settings)
    print(render_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"bench: figures written to {args.json}")
    return 0


def _numbers(text: str, flag: str) -> tuple[float, ...]:
    """``"1,4.5"`` -> ``(1.0, 4.5)``; anything else a ``ValueError`` naming ``flag``."""
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError as err:
        raise ValueError(f"{flag} must be numbers separated by commas ({text!r} given)") from err


def _validate(args: argparse.Namespace) -> int:
    from .validation.report import render_markdown
    from .validation.run import default_device, load_audio_block, load_validation_config, run_validation, summary_line

    config = load_validation_config(args.config, args.train)
    penalties = _numbers(args.penalties, "--penalties")
    baseline_weights = _numbers(args.baseline_weights, "--baseline-weights")
    settings = TrainSettings(steps=args.steps, eval_every=args.eval_every, patience=args.patience,
                             window=args.window, context=args.context, batch_size=args.batch_size,
                             learning_rate=args.lr, model=args.model,
                             device=args.device or default_device(), workers=args.workers, threads=args.threads,
                             holdout=args.holdout, holdout_frames=args.holdout_frames or None, penalties=penalties,
                             baseline_weights=baseline_weights,
                             conditions=tuple(c for c in args.conditions.split(",") if c),
                             chunk_frames=args.chunk_frames, eval_frames=args.eval_frames or None)
    results, paths = run_validation(config, args.val, protocol=args.protocol, seeds=args.seeds, settings=settings,
                                    out_dir=args.out, jobs=args.jobs, progress=not args.no_progress,
                                    cache_dir=args.cache, train_audio=args.train_audio,
                                    audio=load_audio_block(args.config) if args.protocol == "audio" else None)
    print(render_markdown(results))
    print(summary_line(results, paths))
    return 0


DESCRIPTION = ("pointer-streams: stream, pack (samples or audio), simulate edits, check, inspect and preview audio "
               "pointer-network shards; validate what augmentation is worth.")

AUDIO_EXTRA_HINT = "pip install 'pointer-streams[audio]' (soundfile, soxr, librosa)"


def _audio_tools(command: str):
    """The audio tools module, or SystemExit saying which extra to install when its libraries are missing."""
    try:
        from streams.tools import audio_pack, simulate_folder
    except ImportError as err:
        print(f"{command}: needs the audio extra ({err.name or err} is missing): {AUDIO_EXTRA_HINT}", file=sys.stderr)
        raise SystemExit(2) from err
    return audio_pack, simulate_folder


def _pack_audio(args: argparse.Namespace) -> int:
    audio_pack, _ = _audio_tools("pack-audio")
    from streams.audio.mel import MelSettings

    settings = MelSettings(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop_length,
                           n_mels=args.n_mels, f_min=args.f_min, f_max=args.f_max)
    report = audio_pack.pack_audio(args.src_dir, args.out_pattern, settings, workers=args.workers,
                                   max_samples=args.max_samples, max_bytes=args.max_mb * 1e6, on_error=args.on_error,
                                   dtype=args.dtype, progress=not args.no_progress, store=args.store,
                                   overwrite=args.overwrite)
    print("\n".join(report.lines()))
    if report.samples == 0:
        print(f"pack-audio: wrote no sample: all {len(report.skipped)} entries of {args.src_dir} were skipped "
              "(reasons above); nothing was written", file=sys.stderr)
        return 1
    return 0


def _simulate_edits(args: argparse.Namespace) -> int:
    _, simulate_folder = _audio_tools("simulate-edits")
    fraction = args.export_fraction if args.export_fraction is not None else (1.0 if args.export else 0.0)
    report = simulate_folder.simulate_edits(args.audio_dir, args.src_dir, per_track=args.per_track, seed=args.seed,
                                            export_fraction=fraction, min_piece=args.min_piece,
                                            max_piece=args.max_piece, progress=not args.no_progress)
    print("\n".join(report.lines()))
    return 0


def _f_max(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)

EXAMPLES = {
    "run": "python -m pipelines run pipelines/configs/full.json --epochs 2 --workers 2",
    "pack": "python -m pipelines pack my_samples/ 'out/train-%06d.tar' --max-samples 500",
    "pack-audio": "python -m pipelines pack-audio my_edits/ 'out/train-%06d.tar' --workers 2",
    "simulate-edits": "python -m pipelines simulate-edits my_music/ my_edits/ --per-track 2 --export --seed 0",
    "check": "python -m pipelines check 'out/train-{000000..000009}.tar'",
    "generate": "python -m pipelines generate 'out/synth-%06d.tar' --count 100",
    "preview": "python -m pipelines preview pipelines/configs/full.json --out previews/",
    "info": "python -m pipelines info 'shards/demo/demo-{000000..000004}.tar' --json",
    "bench": "python -m pipelines bench --quick",
    "validate": "python -m pipelines validate pipelines/configs/full.json --train 'music/train-{000000..000005}.tar' "
                "--val 'music/val-{000000..000001}.tar' --protocol quick --out runs/quick",
}
"""One example per command, printed at the end of its ``--help``."""


def _command(commands: argparse._SubParsersAction, name: str, help_text: str,
             handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """A subcommand run by ``handler``, whose ``--help`` starts with ``help_text`` and ends with its example."""
    parser = commands.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
                                 epilog=f"example:\n  {EXAMPLES[name]}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def make_parser() -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in EXAMPLES.values())
    epilog += "\n\n`python -m pipelines COMMAND --help` describes one command."
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=DESCRIPTION, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(commands, "run", "stream a configured pipeline and summarise it", _run)
    run.add_argument("config", help="JSON config (see pipelines/configs/)")
    run.add_argument("--epochs", type=int, default=1)
    run.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    run.add_argument("--limit", type=int, default=None, help="stop after this many samples")
    run.add_argument("--stall-timeout", type=float, default=None, metavar="SECONDS",
                     help="fail a pipe: shard read that gets no data this long (naming the shard), and a run whose "
                          "workers deliver nothing for twice this long (default: wait forever)")
    run.add_argument("--no-progress", action="store_true")

    pack = _command(commands, "pack", "pack a folder of samples (.npy triplets or .pt) into shards", _pack)
    pack.add_argument("src_dir", help="folder of KEY.raw_mel.npy, KEY.edit_mel.npy, KEY.pointers.npy "
                                      "(+ KEY.meta.json) triplets or KEY.pt dicts")
    pack.add_argument("out_pattern", help="like out/train-%%06d.tar")
    pack.add_argument("--max-samples", type=int, default=1000, help="samples per shard at most")
    pack.add_argument("--max-mb", type=float, default=1000.0, help="MB per shard at most")
    pack.add_argument("--skip-bad", action="store_true", help="pack the good samples, report the bad")
    pack.add_argument("--overwrite", action="store_true",
                      help="replace shards of this pattern already in the output folder (else refused)")

    pack_audio = _command(commands, "pack-audio", "pack recordings and their EDLs (and exports) into shards",
                          _pack_audio)
    pack_audio.add_argument("src_dir", help="KEY.raw.<ext> + KEY.edl.json (+ KEY.edit.<ext>, KEY.meta.json); "
                                            "see shards/README.md")
    pack_audio.add_argument("out_pattern", help="like out/train-%%06d.tar")
    pack_audio.add_argument("--sample-rate", type=int, default=22050, help="Hz; audio is resampled to it")
    pack_audio.add_argument("--n-fft", type=int, default=1024)
    pack_audio.add_argument("--hop-length", type=int, default=256)
    pack_audio.add_argument("--n-mels", type=int, default=128)
    pack_audio.add_argument("--f-min", type=float, default=0.0, help="Hz")
    pack_audio.add_argument("--f-max", type=_f_max, default=None, help="Hz, or 'none' for sample_rate / 2")
    pack_audio.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="mels on disk")
    pack_audio.add_argument("--store", choices=("mel", "audio"), default="mel",
                            help="mel: log-mels and pointers; audio: FLAC + EDL + mel settings, mels made when read "
                                 "(docs/audio-shards.md)")
    pack_audio.add_argument("--workers", type=int, default=1, help="processes making mels")
    pack_audio.add_argument("--max-samples", type=int, default=1000, help="samples per shard at most")
    pack_audio.add_argument("--max-mb", type=float, default=1000.0, help="MB per shard at most")
    pack_audio.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                            help="raise: stop, write nothing; skip: leave bad entries out and count them")
    pack_audio.add_argument("--overwrite", action="store_true",
                            help="replace shards of this pattern already in the folder (refused otherwise)")
    pack_audio.add_argument("--no-progress", action="store_true")

    simulate = _command(commands, "simulate-edits", "write realistic EDLs (and exports) for a folder of music",
                        _simulate_edits)
    simulate.add_argument("audio_dir", help="a folder of audio files (any format libsndfile reads)")
    simulate.add_argument("src_dir", help="the source folder to write, for pack-audio")
    simulate.add_argument("--per-track", type=int, default=1, help="edits per recording")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--export", action="store_true", help="also render every edit as a perturbed export")
    simulate.add_argument("--export-fraction", type=float, default=None,
                          help="render exports for this share of edits (overrides --export)")
    simulate.add_argument("--min-piece", type=float, default=2.0, help="seconds; shortest piece between cuts")
    simulate.add_argument("--max-piece", type=float, default=8.0, help="seconds; longest piece between cuts")
    simulate.add_argument("--no-progress", action="store_true")

    check = _command(commands, "check", "validate shards; report every problem; exit 1 if any", _check)
    check.add_argument("shards", nargs="+", help="shard paths, URLs or brace patterns")
    check.add_argument("--mel-dtype", choices=("float32", "float16"), default="float32",
                       help="the dtype the source converts mels to (float16 can overflow to Inf)")
    check.add_argument("--max-array-mb", type=float, default=1024.0, help="largest .npy member read (MiB)")
    check.add_argument("--max-meta-mb", type=float, default=4.0, help="largest meta.json member read (MiB)")
    check.add_argument("--stall-timeout", type=float, default=None, metavar="SECONDS",
                       help="fail a pipe: shard read that gets no data this long")
    check.add_argument("--no-progress", action="store_true")

    generate = _command(commands, "generate", "write synthetic samples (a simulated editor) to shards", _generate)
    generate.add_argument("out_pattern", help="like out/synth-%%06d.tar")
    generate.add_argument("--count", type=int, default=100)
    generate.add_argument("--n-mels", type=int, default=80)
    generate.add_argument("--min-frames", type=int, default=500)
    generate.add_argument("--max-frames", type=int, default=3000)
    generate.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    generate.add_argument("--pointer-dtype", choices=("int64", "int32"), default="int64")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--prefix", default="synth")
    generate.add_argument("--max-samples", type=int, default=100, help="samples per shard at most")
    generate.add_argument("--max-mb", type=float, default=1000.0)
    generate.add_argument("--overwrite", action="store_true",
                          help="replace shards of this pattern already in the output folder (else refused)")

    preview = _command(commands, "preview", "PNGs of a sample before/after each enabled augmentation", _preview)
    preview.add_argument("config", help="JSON config (see pipelines/configs/)")
    preview.add_argument("--out", required=True, help="folder for the PNGs")
    preview.add_argument("--index", type=int, default=0,
                         help="which sample of epoch 0's stream, in shard order as the source reads it (0 = first)")

    info = _command(commands, "info", "what shards hold: samples, hours, n_mels, dtypes, lengths, edit structure, "
                                      "bytes", _info)
    info.add_argument("shards", nargs="+", help="shard paths, URLs or brace patterns")
    info.add_argument("--json", action="store_true", help="print the figures as JSON (for scripts)")
    info.add_argument("--no-progress", action="store_true")

    bench = _command(commands, "bench",
                     "throughput and memory as ratios against floors and peers measured in the same run", _bench)
    bench.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks that every part runs")
    bench.add_argument("--parts", help="comma-separated, from stage,reference,peers,e2e,memory,first-batch,audio "
                                       "(default: all)")
    bench.add_argument("--repeats", type=int, help="repetitions of the stage, reference, peers and first-batch parts")
    bench.add_argument("--e2e-repeats", type=int, help="timed epochs per end-to-end configuration")
    bench.add_argument("--stage-shapes", help="per-stage samples, MELSxRAWxEDIT, comma-separated "
                                              "(default 128x30000x20000,80x2000x1333)")
    bench.add_argument("--stage-calls", type=int, help="samples per repetition on the largest shape")
    bench.add_argument("--e2e-samples", type=int, help="samples in the end-to-end shards")
    bench.add_argument("--e2e-n-mels", type=int)
    bench.add_argument("--e2e-min-frames", type=int, help="shortest raw recording in the end-to-end shards")
    bench.add_argument("--e2e-max-frames", type=int)
    bench.add_argument("--samples-per-shard", type=int)
    bench.add_argument("--workers", help="DataLoader worker counts, comma-separated (default 0,1,2)")
    bench.add_argument("--e2e-threads", type=int, help="torch threads of a process reading with 0 workers (default 1)")
    bench.add_argument("--batch-size", type=int)
    bench.add_argument("--shuffle-buffer", type=int, help="shuffle buffer of the end-to-end and memory runs")
    bench.add_argument("--pair-buffer", type=int, help="pairing buffer of the end-to-end and memory runs")
    bench.add_argument("--memory-epochs", type=int)
    bench.add_argument("--first-batch-config", help="config for time to first batch (default configs/full.json)")
    bench.add_argument("--first-batch-workers", help="worker counts, comma-separated (default 0,2)")
    bench.add_argument("--seed", type=int)
    bench.add_argument("--shard-dir", help="keep the benchmark shards here (default: a temporary folder)")
    bench.add_argument("--shards", help="read these shards (a pattern) in the peers, e2e and memory parts instead of "
                                        "simulated ones, e.g. real music")
    bench.add_argument("--mel-dtype", choices=("float32", "float16"), help="what those parts decode mels to "
                                                                           "(default float32)")
    bench.add_argument("--audio-src", help="a simulate-edits folder (recordings + EDLs) whose first recordings the "
                                           "audio part packs (default: recordings synthesised for the run)")
    bench.add_argument("--audio-recordings", type=int, help="recordings of the audio part (default 4)")
    bench.add_argument("--audio-seconds", type=float, help="length of each synthesised recording (default 180)")
    bench.add_argument("--audio-epochs", type=int, help="timed epochs per audio path (default 3)")
    bench.add_argument("--json", default="bench-results.json", help="write the figures here ('' for none)")
    bench.add_argument("--no-progress", action="store_true")

    validate = _command(commands, "validate", "train a small pointer network with and without augmentation; "
                                                     "report held-out accuracy", _validate)
    validate.add_argument("config", nargs="?", default=None, help="JSON config whose augmentations are tested "
                                                                   "(default: pipelines/configs/full.json)")
    validate.add_argument("--train", required=True, help="training shards (pattern); replaces the config's source.urls")
    validate.add_argument("--val", required=True, help="validation shards (recordings not in --train)")
    validate.add_argument("--protocol", choices=("quick", "ablation", "multiplier", "audio"), default="quick")
    validate.add_argument("--train-audio", default=None,
                          help="audio shards (pack-audio --store audio) of the --train recordings; --protocol audio "
                               "only, which trains arms none, mel, audio and both")
    validate.add_argument("--seeds", type=int, default=3)
    validate.add_argument("--steps", type=int, default=_TRAIN.steps,
                          help="step cap per run, the same in every arm (default %(default)s)")
    validate.add_argument("--eval-every", type=int, default=_TRAIN.eval_every,
                          help="score the held-out training recordings every N steps (default %(default)s)")
    validate.add_argument("--patience", type=int, default=_TRAIN.patience,
                          help="stop when the held-out score has not improved for N steps (default %(default)s)")
    validate.add_argument("--holdout", type=float, default=_TRAIN.holdout,
                          help="fraction of training recordings held out for the plateau rule and the jump "
                               "penalty (default %(default)s)")
    validate.add_argument("--holdout-frames", type=int, default=_TRAIN.holdout_frames or 0,
                          help="edit rows scored per held-out recording, centred (0: whole; default %(default)s)")
    validate.add_argument("--penalties", default=",".join(f"{p:g}" for p in _TRAIN.penalties),
                          help="jump penalties (nats) tried on the held-out recordings, scored whole (default "
                               "%(default)s)")
    validate.add_argument("--baseline-weights", default=",".join(f"{w:g}" for w in _TRAIN.baseline_weights),
                          help="weights of the nearest neighbour's scores added to the model's for decoding, tried "
                               "with every penalty on the held-out recordings (default %(default)s)")
    validate.add_argument("--conditions", default=",".join(_TRAIN.conditions),
                          help="validation conditions scored: stored[,like_training][,unlike_training] "
                               "(default stored; each one costs as much as stored)")
    validate.add_argument("--window", type=int, default=_TRAIN.window,
                          help="training window in edit frames (default %(default)s)")
    validate.add_argument("--context", type=int, default=_TRAIN.context,
                          help="raw frames kept either side of what a training window points at (default 100000: "
                               "the whole recording, every raw frame a distractor, as in the search scored)")
    validate.add_argument("--batch-size", type=int, default=_TRAIN.batch_size)
    validate.add_argument("--lr", type=float, default=_TRAIN.learning_rate,
                          help="AdamW learning rate after warm-up (default %(default)s)")
    validate.add_argument("--eval-frames", type=int, default=0,
                          help="edit rows scored per validation recording, a centred excerpt of the whole-recording "
                               "encoding (default 0: whole recordings)")
    validate.add_argument("--chunk-frames", type=int, default=_TRAIN.chunk_frames,
                          help="edit rows scored at once (memory: rows x raw frames x 4 bytes; default %(default)s)")
    validate.add_argument("--model", choices=SIZES, default=_TRAIN.model,
                          help="small: ~31k parameters (the CPU size); medium: ~0.11M (the CPU size until 7 December "
                               "2026); large: ~1.9M (GPU)")
    validate.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    validate.add_argument("--jobs", type=int, default=2, help="runs trained side by side, one process each")
    validate.add_argument("--workers", type=int, default=1, help="DataLoader workers per run")
    validate.add_argument("--threads", type=int, default=1, help="torch threads per run")
    validate.add_argument("--out", default="validate-out", help="folder for results.json, curves.png, summary.md")
    validate.add_argument("--cache", default=None, help="folder keeping each run's result for reuse by later "
                                                        "protocols with the same settings and instrument "
                                                        "revision (default: none)")
    validate.add_argument("--no-progress", action="store_true")
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to the help of every option of ``parser`` and its commands that has a
    default worth showing (not None, not a flag's False) and whose help does not state one already."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _show_defaults(command)
        elif (action.option_strings and "default" not in (action.help or "")
              and not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))):
            action.help = f"{action.help or ''} (default: %(default)s)".lstrip()


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _dispatch(argv)
    except BrokenPipeError:  # stdout closed early (``| head``): stop quietly, as a killed-by-SIGPIPE tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + signal.SIGPIPE


def _dispatch(argv: Sequence[str] | None) -> int:
    args = make_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so temporary folders (pack's staging, skip accounting) are removed
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return args.handler(args)
    except (SampleError, ShardReadError, StallError) as err:  # bad data under on_error="raise", a stall: exit 1
        print(f"{args.command}: {_error_text(err)}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError) as err:
        print(f"{args.command}: {err}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _error_text(err: Exception) -> str:
    """The error's message; for one re-raised from a DataLoader worker, the original's last line."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text
