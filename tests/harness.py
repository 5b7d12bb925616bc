"""The shared invariant harness for stage tests: one set of checks, every stage.

Use it with Hypothesis-drawn tagged samples (:func:`tagged_samples`), where every edit frame is a
copy of the raw frame it points to and raw frames are pairwise distinct, so one equality
(:func:`streams.tools.invariants.pointer_content_error` == 0) tells whether a stage kept the pointers
on their content, whatever it did to frame order or length.

* :func:`check_stage` runs a stage on one sample and checks: pointers int64, one per edit frame,
  in range; the content invariant (when the stage promises it); ``n_mels``, dtypes and (unless
  the stage changes lengths) frame counts kept; finite values; the input sample untouched; the
  same seed giving the same output; the recorded params JSON-friendly and replaying the output
  through ``stage.apply``.
* :func:`check_seeds_differ` checks that different seeds give different outputs. It refuses a
  stage that may not fire, so the check can only pass by the stage's randomness.
* :func:`check_pipe_matches_augment` builds ``Pipe.from_samples(...).<method>(**kwargs)`` and
  checks the pipe's output equals ``stage.augment`` on each sample, in both input orders (the
  randomness is keyed by sample, not by arrival).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from hypothesis import strategies as st

from streams.pipe import Pipe
from streams.sample import Sample
from streams.stages.augment import AugmentStage
from streams.tools.invariants import make_tagged_sample, pointer_content_error

__all__ = ["check_pipe_matches_augment", "check_seeds_differ", "check_stage", "same_content", "tagged_samples"]

POINTER_PATTERNS = ("random", "runs", "sorted", "reversed", "constant", "listed")


def _pattern_pointers(pattern: str, raw_frames: int, edit_frames: int, generator: torch.Generator) -> torch.Tensor:
    if pattern == "random":
        return torch.randint(0, raw_frames, (edit_frames,), generator=generator)
    if pattern == "sorted":
        return torch.randint(0, raw_frames, (edit_frames,), generator=generator).sort().values
    if pattern == "reversed":
        return (raw_frames - 1 - torch.arange(edit_frames)) % raw_frames
    if pattern == "constant":
        return torch.full((edit_frames,), int(torch.randint(0, raw_frames, (), generator=generator)))
    # "runs": stretches of consecutive raw frames from random places, like a real edit
    new_run = torch.rand(edit_frames, generator=generator) < 0.1
    run = new_run.cumsum(0)
    run_starts = torch.randint(0, raw_frames, (edit_frames + 1,), generator=generator)
    first_index = torch.zeros(edit_frames + 1, dtype=torch.int64).scatter_reduce(
        0, run, torch.arange(edit_frames), reduce="amin", include_self=False)
    return (run_starts[run] + torch.arange(edit_frames) - first_index[run]).clamp(max=raw_frames - 1)


@st.composite
def tagged_samples(draw: st.DrawFn, *, max_mels: int = 6, max_raw_frames: int = 300, max_edit_frames: int = 300,
                   min_edit_frames: int = 0, dtypes: Sequence[torch.dtype] = (torch.float32, torch.float16)) -> Sample:
    """Tagged samples of drawn shape: ``n_mels`` 1..max, ``T_raw`` 1..max, ``T_edit`` min..max.

    Pointers are random, runs of consecutive frames, sorted, reversed, constant, or a drawn list
    (short edits); repeats and out-of-order pointers are common. Float16 raw frames stay distinct
    (row 0 is the frame index, exact below 2048 frames).
    """
    n_mels = draw(st.integers(1, max_mels))
    raw_frames = draw(st.integers(1, max_raw_frames))
    pattern = draw(st.sampled_from(POINTER_PATTERNS))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    if pattern == "listed":
        values = st.integers(0, raw_frames - 1)
        pointers = torch.tensor(draw(st.lists(values, min_size=min_edit_frames, max_size=min(max_edit_frames, 12))),
                                dtype=torch.int64)
    else:
        edit_frames = draw(st.integers(min_edit_frames, max_edit_frames))
        pointers = _pattern_pointers(pattern, raw_frames, edit_frames, generator)
    dtype = draw(st.sampled_from(list(dtypes)))
    return make_tagged_sample(f"tagged-{seed}", n_mels, raw_frames, pointers, generator=generator, dtype=dtype)


def same_content(a: Sample, b: Sample) -> bool:
    """Same key, tensors (values, dtypes, shapes) and metadata; origin and url are ignored."""
    return (a.key == b.key and a.meta == b.meta
            and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in
                    ((a.raw_mel, b.raw_mel), (a.edit_mel, b.edit_mel), (a.pointers, b.pointers))))


def _snapshot(sample: Sample) -> tuple[Any, ...]:
    return (sample.key, sample.raw_mel.clone(), sample.edit_mel.clone(), sample.pointers.clone(),
            json.dumps(sample.meta, sort_keys=True), sample.url, sample.origin)


def _assert_untouched(sample: Sample, snapshot: tuple[Any, ...], stage: AugmentStage) -> None:
    key, raw, edit, pointers, meta, url, origin = snapshot
    assert sample.key == key and sample.url == url and sample.origin == origin, f"{stage!r} changed the input's fields"
    for name, before in (("raw_mel", raw), ("edit_mel", edit), ("pointers", pointers)):
        assert torch.equal(getattr(sample, name), before), f"{stage!r} wrote into the input's {name}"
    assert json.dumps(sample.meta, sort_keys=True) == meta, f"{stage!r} changed the input's meta"


def check_stage(stage: AugmentStage, sample: Sample, *, seed: int = 0, epoch: int = 0, pointer_content: bool = True,
                keeps_frames: bool = True) -> Sample:
    """Run ``stage.augment(sample)`` and check every invariant; return the output.

    ``pointer_content``: the stage must keep ``pointer_content_error == 0`` (pointer-aware stages,
    spectral ones in shared mode); ``sample`` must then be tagged. ``keeps_frames``: ``T_raw``
    and ``T_edit`` must not change (every stage but crop).
    """
    if pointer_content:
        assert pointer_content_error(sample) == 0.0, "check_stage(pointer_content=True) needs a tagged sample"
    snapshot = _snapshot(sample)
    out = stage.augment(sample, seed=seed, epoch=epoch)
    _assert_untouched(sample, snapshot, stage)

    assert out.key == sample.key
    for name in ("raw_mel", "edit_mel"):
        mel = getattr(out, name)
        assert isinstance(mel, torch.Tensor) and mel.ndim == 2, f"{name} is no longer a 2-D tensor"
        assert mel.dtype == sample.raw_mel.dtype, f"{name} dtype {mel.dtype} != input {sample.raw_mel.dtype}"
        assert mel.shape[0] == sample.n_mels, f"{name} has {mel.shape[0]} bins, input {sample.n_mels}"
        assert bool(torch.isfinite(mel).all()), f"{name} holds NaN or Inf"
    assert out.pointers.dtype == torch.int64 and out.pointers.shape == (out.edit_frames,)
    if out.edit_frames:
        low, high = int(out.pointers.min()), int(out.pointers.max())
        assert 0 <= low and high < out.raw_frames, f"pointers span [{low}, {high}], T_raw = {out.raw_frames}"
    if keeps_frames:
        assert (out.raw_frames, out.edit_frames) == (sample.raw_frames, sample.edit_frames)
    if pointer_content:
        assert pointer_content_error(out) == 0.0, f"{stage!r} moved a pointer off its content"

    assert same_content(out, stage.augment(sample, seed=seed, epoch=epoch)), "same seed gave a different output"

    records = out.meta.get("augmentations", [])
    if out is not sample:
        assert len(records) == len(sample.meta.get("augmentations", [])) + 1
        params = {k: v for k, v in records[-1].items() if k != "stage"}
        replayed_params = json.loads(json.dumps(params))
        assert replayed_params == params, "params do not survive a JSON round trip"
        replayed = stage.apply(sample, replayed_params)
        assert same_content(replayed.with_record(records[-1]["stage"], **params), out), "the record does not replay"
    return out


def check_seeds_differ(stage: AugmentStage, sample: Sample, seeds: Iterable[int] = (0, 1, 2, 3)) -> None:
    """Outputs for distinct seeds are pairwise different (tensors, not just the records).

    The stage must fire on every sample (probability 1, no schedule) and ``sample`` must be large
    enough that two seeds coinciding is practically impossible: then a failure means the stage
    ignores its randomness.
    """
    assert stage.probability == 1.0 and stage.schedule is None, "check_seeds_differ needs a stage that always fires"
    outputs = [stage.augment(sample, seed=seed) for seed in seeds]
    for i, a in enumerate(outputs):
        for b in outputs[i + 1:]:
            same_tensors = (a.raw_mel.shape == b.raw_mel.shape and a.edit_mel.shape == b.edit_mel.shape
                            and torch.equal(a.raw_mel, b.raw_mel) and torch.equal(a.edit_mel, b.edit_mel)
                            and torch.equal(a.pointers, b.pointers))
            assert not same_tensors, f"{stage!r}: two seeds gave the same output"


def check_pipe_matches_augment(method: str, kwargs: dict[str, Any], samples: Sequence[Sample], *,
                               seed: int = 0) -> None:
    """``Pipe.from_samples(samples).<method>(**kwargs)`` yields ``stage.augment(s)`` for each sample,
    whichever order the samples arrive in. Samples need distinct keys and at least one edit frame."""
    assert len({s.key for s in samples}) == len(samples), "samples need distinct keys"
    for ordered in (list(samples), list(reversed(samples))):
        pipe = getattr(Pipe.from_samples(ordered, seed=seed), method)(**kwargs)
        stage = pipe.stages[-1]
        assert isinstance(stage, AugmentStage)
        outputs = {out.key: out for out in pipe}
        assert sorted(outputs) == sorted(s.key for s in samples)
        for sample in samples:
            expected = stage.augment(sample, seed=seed, epoch=0, stage=pipe.stage_names[-1])
            assert same_content(outputs[sample.key], expected), f"pipe output for {sample.key} differs from augment"
