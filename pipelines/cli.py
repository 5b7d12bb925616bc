"""Command line: ``python -m pipelines {run,pack,check,generate,preview,bench,validate} ...``.

Each command parses its arguments, calls the library, and prints a short summary. No logic lives
only here.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm

from streams.reading.decode import decode_record
from streams.sample import SampleError, check_sample
from streams.tools.shard_check import check_shards
from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import EditStyle, synthetic_sample
from streams.reading.tar_records import Record, ShardReadError

from .config import ConfigError, load_config

__all__ = ["main"]


def _run(args: argparse.Namespace) -> int:
    from .run import run_pipeline

    config = load_config(args.config)
    summary = run_pipeline(config, epochs=args.epochs, num_workers=args.workers, limit=args.limit,
                           progress=not args.no_progress)
    print("\n".join(summary.lines()))
    return 0


def _pack(args: argparse.Namespace) -> int:
    from streams.tools.sample_folder import iter_sample_folder

    problems: list[str] = []
    written = 0

    def checked(desc: str):
        nonlocal written
        for key, members in tqdm(iter_sample_folder(args.src_dir), unit="sample", desc=desc):
            try:
                check_sample(decode_record(Record(key=key, index=0, members=members, url=args.src_dir)))
            except SampleError as err:
                problems.append(str(err))
                continue
            written += 1
            yield key, members

    if not args.skip_bad:  # a first pass keeps nothing but the problems: no shard is written unless all are good
        for _ in checked("check"):
            pass
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"pack: {len(problems)} bad sample(s), nothing written; fix them or pass --skip-bad",
                  file=sys.stderr)
            return 1
        written = 0
    index = write_shards(checked("pack"), args.out_pattern, max_samples=args.max_samples,
                         max_bytes=args.max_mb * 1e6)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    total_mb = sum(e["bytes"] for e in index.values()) / 1e6
    print(f"pack: {written} samples into {len(index)} shard(s), {total_mb:,.1f} MB; {len(problems)} skipped")
    return 0


def _check(args: argparse.Namespace) -> int:
    shards = samples = 0
    reasons: collections.Counter[str] = collections.Counter()
    for result in tqdm(check_shards(args.shards, mel_dtype=args.mel_dtype), unit="shard", desc="check",
                       disable=args.no_progress):
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

    index = write_shards(samples(), args.out_pattern, max_samples=args.max_samples, max_bytes=args.max_mb * 1e6)
    total_mb = sum(e["bytes"] for e in index.values()) / 1e6
    print(f"generate: {args.count} samples into {len(index)} shard(s), {total_mb:,.1f} MB")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from streams import Pipe
    from streams.stages.augment import AugmentStage
    from streams.tools.preview import render_preview

    from .build import build_stages

    config = load_config(args.config)
    stages = build_stages(config)
    source = Pipe(stages[:1], seed=config.seed)
    for index, sample in enumerate(source):
        if index == args.index:
            break
    else:
        print(f"preview: the shards hold fewer than {args.index + 1} samples", file=sys.stderr)
        return 1
    augmentations = [(stage.name, stage) for stage in stages[1:] if isinstance(stage, AugmentStage)]
    if not augmentations:
        print("preview: no augmentation is enabled in this config", file=sys.stderr)
        return 1
    paths = render_preview(sample, augmentations, args.out, seed=config.seed)
    print(f"preview: sample {sample.key!r}, {len(augmentations)} augmentation(s), {len(paths)} PNG(s) in {args.out}")
    return 0


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


def _validate(args: argparse.Namespace) -> int:
    from .validation.report import render_markdown
    from .validation.run import default_device, load_validation_config, run_validation, summary_line
    from .validation.train import TrainSettings

    config = load_validation_config(args.config, args.train)
    settings = TrainSettings(steps=args.steps, window=args.window, batch_size=args.batch_size,
                             learning_rate=args.lr, evaluations=args.evaluations, model=args.model,
                             device=args.device or default_device(), workers=args.workers, threads=args.threads,
                             eval_frames=args.eval_frames or None)
    results, paths = run_validation(config, args.val, protocol=args.protocol, seeds=args.seeds, settings=settings,
                                    out_dir=args.out, jobs=args.jobs, progress=not args.no_progress,
                                    cache_dir=args.cache)
    print(render_markdown(results))
    print(summary_line(results, paths))
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="stream a configured pipeline and summarise it")
    run.add_argument("config", help="JSON config (see pipelines/configs/)")
    run.add_argument("--epochs", type=int, default=1)
    run.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    run.add_argument("--limit", type=int, default=None, help="stop after this many samples")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(handler=_run)

    pack = commands.add_parser("pack", help="pack a folder of samples (.npy triplets or .pt) into shards")
    pack.add_argument("src_dir")
    pack.add_argument("out_pattern", help="like out/train-%%06d.tar")
    pack.add_argument("--max-samples", type=int, default=1000, help="samples per shard at most")
    pack.add_argument("--max-mb", type=float, default=1000.0, help="MB per shard at most")
    pack.add_argument("--skip-bad", action="store_true", help="pack the good samples, report the bad")
    pack.set_defaults(handler=_pack)

    check = commands.add_parser("check", help="validate shards; report every problem; exit 1 if any")
    check.add_argument("shards", nargs="+", help="shard paths, URLs or brace patterns")
    check.add_argument("--mel-dtype", choices=("float32", "float16"), default="float32",
                       help="the dtype the source converts mels to (float16 can overflow to Inf)")
    check.add_argument("--no-progress", action="store_true")
    check.set_defaults(handler=_check)

    generate = commands.add_parser("generate", help="write synthetic samples (a simulated editor) to shards")
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
    generate.set_defaults(handler=_generate)

    preview = commands.add_parser("preview", help="PNGs of a sample before/after each enabled augmentation")
    preview.add_argument("config")
    preview.add_argument("--out", required=True, help="folder for the PNGs")
    preview.add_argument("--index", type=int, default=0, help="which sample of epoch 0's stream, in shard order as the source reads it (0 = first)")
    preview.set_defaults(handler=_preview)

    bench = commands.add_parser("bench", help="throughput and memory as ratios against floors measured in the same run")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks that every part runs")
    bench.add_argument("--parts", help="comma-separated, from stage,reference,e2e,memory,first-batch (default: all)")
    bench.add_argument("--repeats", type=int, help="repetitions of the stage, reference and first-batch parts")
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
    bench.add_argument("--json", default="bench-results.json", help="write the figures here ('' for none)")
    bench.add_argument("--no-progress", action="store_true")
    bench.set_defaults(handler=_bench)

    validate = commands.add_parser("validate", help="train a small pointer network with and without augmentation; "
                                                     "report held-out accuracy")
    validate.add_argument("config", nargs="?", default=None, help="JSON config whose augmentations are tested "
                                                                   "(default: pipelines/configs/full.json)")
    validate.add_argument("--train", required=True, help="training shards (pattern); replaces the config's source.urls")
    validate.add_argument("--val", required=True, help="validation shards (recordings not in --train)")
    validate.add_argument("--protocol", choices=("quick", "ablation", "multiplier"), default="quick")
    validate.add_argument("--seeds", type=int, default=3)
    validate.add_argument("--steps", type=int, default=100, help="optimiser steps per run, the same in every arm")
    validate.add_argument("--window", type=int, default=200, help="training window in edit frames")
    validate.add_argument("--batch-size", type=int, default=8)
    validate.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    validate.add_argument("--evaluations", type=int, default=3, help="evaluations per run (the last 3 are scored)")
    validate.add_argument("--eval-frames", type=int, default=500,
                          help="edit frames scored per validation recording, a centred excerpt searched against "
                               "the whole raw recording (0: whole edits; cost grows with T_edit x T_raw)")
    validate.add_argument("--model", choices=("small", "large"), default="small",
                          help="small: ~0.16M parameters (CPU); large: ~1.2M (GPU)")
    validate.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    validate.add_argument("--jobs", type=int, default=2, help="runs trained side by side, one process each")
    validate.add_argument("--workers", type=int, default=1, help="DataLoader workers per run")
    validate.add_argument("--threads", type=int, default=1, help="torch threads per run")
    validate.add_argument("--out", default="validate-out", help="folder for results.json, curves.png, summary.md")
    validate.add_argument("--cache", default=None, help="folder keeping each run's result for reuse by later "
                                                        "protocols with the same settings (default: none)")
    validate.add_argument("--no-progress", action="store_true")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SampleError, ShardReadError) as err:  # bad data under on_error="raise": exit 1, like check
        print(f"{args.command}: {_error_text(err)}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError) as err:
        print(f"{args.command}: {err}", file=sys.stderr)
        return 2


def _error_text(err: Exception) -> str:
    """The error's message; for one re-raised from a DataLoader worker, the original's last line."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text
