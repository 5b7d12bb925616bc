"""Parts ``stage`` and ``reference``: each augmentation stage against a ``clone()`` floor, and against
the plan's reference code (:mod:`pipelines.bench.reference`), on simulated-editor samples.

Each stage is built by ``build_stages`` from the plan's config example with only its block
enabled and probability 1 (so it always fires), plus rows for the non-default settings users
pick (:data:`~pipelines.bench.settings.STAGE_VARIANTS`). Figures are ms per sample, and the ratio
to the floor, a ``clone()`` of the tensors the stage is given (raw mel, edit mel, pointers; both
samples of a pair for concatenation). Every call uses a new sample key and every repetition a new
epoch, so each call makes fresh draws. Timed on one torch thread (as in a DataLoader worker) in
process CPU time, which other jobs on the machine barely change; wall time is kept beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from streams import MemorySource, Pipe, Sample, Stage
from streams.seeding import derive_seed

from .data import augmentation_stage, bench_sample
from .reference import REFERENCE_AUGMENTATIONS, reference_generators
from .reference import concatenate_samples as reference_concatenate
from .rows import ReferenceRow, StageRow
from .settings import AUGMENTATION_BLOCKS, STAGE_ROWS, STAGE_VARIANTS, BenchSettings, StageShape
from .timing import Measure, Spread, TimeSpread, Timing, interleaved, progress_bar, timed

__all__ = ["bench_stages"]


def _tensors(sample: Sample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return sample.raw_mel, sample.edit_mel, sample.pointers


def _calls_per_repeat(shape: StageShape, settings: BenchSettings) -> int:
    """Items per timed repetition: ``stage_calls`` on the long sample, more on smaller ones (up to 50)
    so that every repetition runs long enough for the clock."""
    values = shape.n_mels * (shape.raw_frames + shape.edit_frames)
    return min(50, max(settings.stage_calls, math.ceil(settings.stage_calls * 2e6 / values)))


def _repeated(call: Callable[[int, int], object], calls: int) -> Measure:
    """A measure that runs ``call(repeat, index)`` for ``index`` in ``range(calls)``."""

    def measure(repeat: int) -> Timing:
        def run() -> int:
            for index in range(calls):
                call(repeat, index)
            return calls

        return timed(run)

    return measure


def _stage_measure(stage: Stage, block: str, sample: Sample, partner: Sample, calls: int, seed: int) -> Measure:
    """Our stage on ``calls`` copies of ``sample`` with distinct keys (a new draw each); for
    concatenation, ``calls`` pairs through the pairing stage itself."""
    if block == "concatenation":
        items = [s for call in range(calls) for s in (sample.replace(key=f"{sample.key}/a{call}"),
                                                      partner.replace(key=f"{partner.key}/b{call}"))]

        def pairs(repeat: int) -> Timing:
            pipe = Pipe([MemorySource(items, check=False), stage], seed=seed)
            pipe.set_epoch(repeat)

            def run() -> int:
                emitted = 0
                for pair in pipe:
                    emitted += 1
                    del pair  # free it before the next one, as the other measures do
                if emitted != calls:
                    raise RuntimeError(f"the pairing stage made {emitted} items from {2 * calls} samples; "
                                       f"expected {calls} pairs at probability 1")
                return calls

            return timed(run)

        return pairs
    keyed = [sample.replace(key=f"{sample.key}/{call}") for call in range(calls)]
    return _repeated(lambda repeat, call: stage.augment(keyed[call], seed=seed, epoch=repeat), calls)


def _reference_measure(block: str, sample: Sample, partner: Sample, calls: int, seed: int) -> Measure:
    """The plan's reference for ``block`` on ``sample``, ``calls`` times with fresh generators."""
    if block == "concatenation":
        return _repeated(lambda repeat, call: reference_concatenate(_tensors(sample), _tensors(partner)), calls)
    reference = REFERENCE_AUGMENTATIONS[block]

    def augment(repeat: int, call: int) -> None:
        reference(*_tensors(sample), *reference_generators(derive_seed("bench-reference", seed, repeat, block, call)))

    return _repeated(augment, calls)


def _clone_measure(tensors: Sequence[torch.Tensor], calls: int) -> Measure:
    """The floor: ``clone()`` of ``tensors``, ``calls`` times."""
    return _repeated(lambda repeat, call: [tensor.clone() for tensor in tensors], calls)


def _reference_failure(block: str, sample: Sample, seed: int) -> str | None:
    """Why the plan's reference cannot run on ``sample`` (its own edge-case bugs), or ``None``."""
    if block == "concatenation":
        return None
    try:
        REFERENCE_AUGMENTATIONS[block](*_tensors(sample), *reference_generators(seed))
    except (ValueError, RuntimeError, IndexError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def bench_stages(settings: BenchSettings, *, with_reference: bool = True
                 ) -> tuple[list[StageRow], list[ReferenceRow]]:
    """Per-stage ms per sample against the clone floor, and (optionally) against the plan's reference.

    Returns the stage rows and the reference rows; each names the shape and the block (a
    :data:`~pipelines.bench.settings.STAGE_ROWS` name: stage rows include the variants).
    """
    variants = {row: STAGE_VARIANTS.get(row, (row, {})) for row in STAGE_ROWS}  # row -> (block, fields)
    stages = {row: augmentation_stage(block, fields=fields) for row, (block, fields) in variants.items()}
    stage_rows: list[StageRow] = []
    reference_rows: list[ReferenceRow] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for shape_index, shape in enumerate(settings.stage_shapes):
            calls, seed = _calls_per_repeat(shape, settings), settings.seed
            sample = bench_sample(f"bench-{shape.label}", shape, seed=seed)
            partner = bench_sample(f"bench-{shape.label}-partner", shape, seed=seed + 1)
            measures: dict[str, Measure] = {
                "floor": _clone_measure(_tensors(sample), calls),
                "floor_pair": _clone_measure([*_tensors(sample), *_tensors(partner)], calls),
            }
            failures: dict[str, str] = {}
            for name, stage in stages.items():
                measures[f"ours:{name}"] = _stage_measure(stage, variants[name][0], sample, partner, calls, seed)
            for block in AUGMENTATION_BLOCKS if with_reference else ():
                failure = _reference_failure(block, sample, seed)
                if failure is None:
                    measures[f"reference:{block}"] = _reference_measure(block, sample, partner, calls, seed)
                else:
                    failures[block] = failure
            with progress_bar(settings, len(measures) * settings.repeats, f"bench: stages {shape.label}",
                              "run") as bar:
                times = interleaved(measures, settings.repeats, bar)
            cpu = {name: [t.cpu for t in timings] for name, timings in times.items()}
            for name in stages:  # a block, or a variant of one (compared with the plan's code only as a block)
                floor = "floor_pair" if name == "concatenation" else "floor"
                ours = TimeSpread.of_timings(times[f"ours:{name}"])
                stage_rows.append(StageRow(shape=shape.label, long=shape_index == 0, stage=name, calls=calls,
                                           per="pair" if name == "concatenation" else "sample", ms=ours,
                                           floor_ms=TimeSpread.of_timings(times[floor]),
                                           ratio=Spread.of_ratios(cpu[f"ours:{name}"], cpu[floor])))
                if not with_reference or name not in AUGMENTATION_BLOCKS:
                    continue
                ran = name not in failures
                reference_rows.append(ReferenceRow(
                    shape.label, shape_index == 0, name, calls, ours,
                    TimeSpread.of_timings(times[f"reference:{name}"]) if ran else None,
                    Spread.of_ratios(cpu[f"reference:{name}"], cpu[f"ours:{name}"]) if ran else None,
                    failures.get(name)))
    finally:
        torch.set_num_threads(threads)
    return stage_rows, reference_rows
