"""The benchmark's figures as plain-text tables (what ``python -m pipelines bench`` prints)."""

from __future__ import annotations

from collections.abc import Sequence

from .rows import BenchResult
from .settings import TARGETS
from .timing import Spread

__all__ = ["render_report"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _ms(spread: Spread) -> str:
    return f"{spread.median:.2f} [{spread.min:.2f}-{spread.max:.2f}]"


def _x(spread: Spread) -> str:
    return f"{spread.median:.2f}x [{spread.min:.2f}-{spread.max:.2f}]"


def _stage_lines(result: BenchResult) -> list[str]:
    out = ["", "Per stage (forced to fire, 1 torch thread): CPU ms per sample vs clone() of its tensors"]
    return out + _table(["stage", "shape", "ms", "floor ms", "ratio"],
                        [[row.stage + (" (per pair)" if row.per == "pair" else ""), row.shape, _ms(row.ms),
                          _ms(row.floor_ms), _x(row.ratio)] for row in result.stage])


def _reference_lines(result: BenchResult) -> list[str]:
    out = ["", "Against the plan's reference code (pipelines/bench/reference.py): speed-up = reference / ours"]
    return out + _table(["stage", "shape", "ours ms", "reference ms", "speed-up"],
                        [[row.stage, row.shape, _ms(row.ours_ms),
                          _ms(row.reference_ms) if row.reference_ms else "fails: " + row.reference_error[:40],
                          _x(row.speedup) if row.speedup else "-"] for row in result.reference])


def _peer_lines(result: BenchResult) -> list[str]:
    peers = result.peers
    out = ["", f"Against what a user would write instead: {peers.samples} samples of {peers.shards}, decoded to "
               f"{peers.mel_dtype}; CPU ms per sample, 1 torch thread, {peers.repeats} interleaved passes each"]
    out += _table(["loop", "ms per sample", "what it does"],
                  [[row.loop, _ms(row.ms), row.description] for row in peers.rows])
    out += _table(["ratio", "speed-up (their time / ours)"],
                  [[ratio.what, _x(ratio.speedup)] for ratio in peers.ratios])
    if peers.plan_function_failures:
        out.append(f"(the plan's functions failed {peers.plan_function_failures} time(s) in a pass, passed over)")
    return out


def _e2e_lines(result: BenchResult) -> list[str]:
    e2e = result.e2e
    source = "simulated shards" if e2e.synthetic else e2e.shards
    out = ["", f"End to end: {e2e.samples} samples ({source}), {e2e.n_mels} mels, {e2e.decoded_mb:.0f} MB decoded to "
               f"{e2e.mel_dtype} per epoch ({e2e.disk_mb:.0f} MB on disk); {e2e.repeats} timed epochs per row, wall "
               f"clock; {e2e.threads} torch thread(s) per reading process"]
    kinds = list(e2e.rows[0].kinds)
    headers = ["workers", *(f"{kind} samples/s" for kind in kinds), "full MB/s", "full / floor",
               *(f"CPU ms/sample {kind}" for kind in kinds), "cores busy (full)"]
    out += _table(headers, [[str(row.workers), *(f"{row.kinds[kind].samples_per_s:.1f}" for kind in kinds),
                             f"{row.kinds['full'].mb_per_s:.0f}", _x(row.ratio),
                             *(f"{row.kinds[kind].cpu_ms_per_sample.median:.1f}" for kind in kinds),
                             f"{row.kinds['full'].cores_busy:.2f}"] for row in e2e.rows])
    for kind, scaling in e2e.in_process.items():
        out.append(f"scaling ({kind}, samples/s vs 0 workers, in process): "
                   + ", ".join(f"{w} worker(s) {_x(s)}" for w, s in scaling.items()))
    for kind, scaling in e2e.scaling.items():
        out.append(f"scaling ({kind}, samples/s vs 1 worker): "
                   + ", ".join(f"{w} worker(s) {s:.2f}x" for w, s in scaling.items()))
    return out


def _memory_lines(result: BenchResult) -> list[str]:
    m = result.memory
    out = ["", f"Memory (child process, 0 workers, shuffle buffer {m.shuffle_buffer}, pairing buffer "
               f"{m.pair_buffer}, batches of {m.batch_size}, {m.epochs} epochs)"]
    out += _table(["figure", "MB"], [
        ["baseline RSS before the first item (warmed up, trimmed)", f"{m.baseline_mb:.0f}"],
        ["in-flight allowance (2 batches + 2 samples)", f"{m.in_flight_mb:.0f}"],
        ["stated constant (baseline + in-flight)", f"{m.constant_mb:.0f}"],
        [f"buffered bytes, max ({m.buffered_items} samples)", f"{m.buffered_mb:.0f}"],
        ["peak RSS", f"{m.peak_mb:.0f}"],
        [f"bound: constant + {TARGETS.memory_buffer_factor:g} x buffered", f"{m.bound_mb:.0f}"],
        ["RSS at the end of each epoch", ", ".join(f"{v:.0f}" for v in m.epoch_end_mb)],
        *([["... after malloc_trim (memory still in use)", ", ".join(f"{v:.0f}" for v in m.epoch_end_trimmed_mb)]]
          if m.epoch_end_trimmed_mb else []),
    ])
    if m.peak_over_baseline_per_buffered is not None:
        out.append(f"(peak - baseline) / buffered = {m.peak_over_baseline_per_buffered:.2f}")
    return out


def _first_batch_lines(result: BenchResult) -> list[str]:
    fb = result.first_batch
    out = ["", f"Time to first batch ({fb.config}), seconds"]
    return out + _table(["workers", "in process", "fresh python process", "(in the child after import pipelines)"],
                        [[str(row.workers), _ms(row.in_process_s), _ms(row.fresh_process_s),
                          _ms(row.fresh_after_start_s)] for row in fb.rows])


def _audio_lines(result: BenchResult) -> list[str]:
    audio = result.audio
    source = "synthesised" if audio.synthetic else f"the first of {audio.source}"
    lengths = ", ".join(f"{s:.0f}" for s in audio.recording_seconds)
    out = ["", f"Audio shards: {audio.recordings} recordings ({source}) of {lengths} s, one per shard, against mel "
               f"shards of the same recordings; 1 torch thread in one process (what one DataLoader worker "
               f"delivers), median of {audio.epochs} epoch(s), wall clock"]
    return out + _table(["path", "samples/s", "s of recording / s", "CPU ms/sample", "time / mel shards"],
                        [[row.path, f"{row.samples_per_s:.2f}", f"{row.realtime:.1f}",
                          f"{row.cpu_ms_per_sample.median:.0f}", _x(row.ratio)] for row in audio.rows])


def render_report(result: BenchResult) -> str:
    """The figures of :func:`~pipelines.bench.run.run_benchmarks` as plain-text tables, then the targets."""
    env = result.environment
    out = [f"pipelines bench: {env['cpus']} CPU(s), torch {env['torch']} ({env['torch_threads']} threads), "
           f"Python {env['python']}; load average {env['load_average_start']} at the start, "
           f"{env.get('load_average_end')} at the end; median [min-max] over repeats"]
    sections = ((result.stage, _stage_lines), (result.reference, _reference_lines), (result.peers, _peer_lines),
                (result.e2e, _e2e_lines), (result.memory, _memory_lines), (result.first_batch, _first_batch_lines),
                (result.audio, _audio_lines))
    for part, lines in sections:
        if part is not None:
            out += lines(result)
    if result.targets:
        out += ["", "Targets"]
        out += _table(["part", "figure", "value", "target", ""],
                      [[t.part, t.what, "-" if t.figure is None else f"{t.figure:.2f}", t.target,
                        {True: "met", False: "MISSED", None: "n/a"}[t.met]] for t in result.targets])
        met = sum(1 for t in result.targets if t.met)
        out.append(f"{met} of {len(result.targets)} targets met; bench took {result.seconds:.1f} s")
    return "\n".join(out)
