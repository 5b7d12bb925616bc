"""Tests of the six augmentations of the plan (A1-A4 spectral, B1 chunk shuffle, B2 crop)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.pipe import Pipe
from streams.sample import Sample
from streams.schedule import ProbabilitySchedule
from streams.stages.channel_dropout import ChannelDropoutStage, drop_channels
from streams.stages.chunk_shuffle import CAT_MAX_CHUNKS, ChunkShuffleStage, chunk_count, shuffle_chunks
from streams.stages.crop import CropStage, crop_sample, cut_sample
from streams.stages.gain import GainStage
from streams.stages.noise import NoiseStage, gaussian_table, table_noise
from streams.stages.spec_augment import SpecAugmentStage, span_mask
from streams.tools.invariants import make_tagged_sample, pointer_content_error

from .harness import check_pipe_matches_augment, check_seeds_differ, check_stage, tagged_samples

PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (pipe method, kwargs, pointer content kept, frame counts kept): stages at probability 1 with
# settings small enough that the drawn samples (up to 300 frames) get real masks, crops, chunks.
SMALL = {"freq_width": (1, 4), "time_width": (1, 40), "max_time_fraction": 0.5}
CASES = [
    ("noise", {"probability": 1.0, "mode": "shared"}, True, True),
    ("noise", {"probability": 1.0, "mode": "independent"}, False, True),
    ("gain", {"probability": 1.0}, True, True),
    ("gain", {"probability": 1.0, "domain": "db"}, True, True),
    ("gain", {"probability": 1.0, "mode": "independent"}, False, True),
    ("channel_dropout", {"probability": 1.0, "dropout_rate": 0.3}, True, True),
    ("channel_dropout", {"probability": 1.0, "dropout_rate": 0.3, "mode": "independent"}, False, True),
    ("spec_augment", {"probability": 1.0, **SMALL}, True, True),
    ("spec_augment", {"probability": 1.0, "fill": "mean", **SMALL}, True, True),
    ("spec_augment", {"probability": 1.0, "fill": "mean", "mode": "independent", **SMALL}, False, True),
    ("spec_augment", {"probability": 1.0, "adaptive": True, "time_mask_multiplicity": 0.05, "time_mask_ratio": 0.1,
                      "max_time_fraction": 1.0, "freq_masks": (0, 3)}, True, True),
    ("crop", {"probability": 1.0, "min_len": 1, "max_len": 50, "context": 3}, True, False),
    ("chunk_shuffle", {"probability": 1.0, "chunk_size": 7}, True, True),
]
CASE_IDS = [f"{method}-{'-'.join(f'{k}={v}' for k, v in kwargs.items() if k != 'probability')}"
            for method, kwargs, _, _ in CASES]


def build(method: str, kwargs: dict):
    return getattr(Pipe.from_samples([]), method)(**kwargs).stages[-1]


def tagged(key: str, n_mels: int, raw_frames: int, edit_frames: int, *, seed: int = 0,
           dtype: torch.dtype = torch.float32) -> Sample:
    generator = torch.Generator().manual_seed(seed)
    pointers = torch.randint(0, raw_frames, (edit_frames,), generator=generator)
    return make_tagged_sample(key, n_mels, raw_frames, pointers, generator=generator, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# the shared harness, on every stage


@pytest.mark.parametrize(("method", "kwargs", "pointer_content", "keeps_frames"), CASES, ids=CASE_IDS)
@PROPERTY
@given(sample=tagged_samples(), seed=st.integers(0, 2**16))
def test_stage_invariants(method, kwargs, pointer_content, keeps_frames, sample, seed):
    check_stage(build(method, kwargs), sample, seed=seed, pointer_content=pointer_content, keeps_frames=keeps_frames)


@pytest.mark.parametrize(("method", "kwargs", "pointer_content", "keeps_frames"), CASES, ids=CASE_IDS)
def test_different_seeds_give_different_outputs(method, kwargs, pointer_content, keeps_frames):
    big = tagged("big", 40, 2000, 1500, seed=7)
    check_seeds_differ(build(method, kwargs), big)


@pytest.mark.parametrize(("method", "kwargs", "pointer_content", "keeps_frames"), CASES, ids=CASE_IDS)
def test_pipe_output_equals_augment_in_any_order(method, kwargs, pointer_content, keeps_frames):
    samples = [tagged(f"s{i}", 5, 50 + 37 * i, 1 + 29 * i, seed=i, dtype=(torch.float32, torch.float16)[i % 2])
               for i in range(6)]
    check_pipe_matches_augment(method, kwargs, samples, seed=11)


@pytest.mark.parametrize(("method", "kwargs", "pointer_content", "keeps_frames"), CASES, ids=CASE_IDS)
def test_probability_zero_and_warmup_leave_samples_alone(method, kwargs, pointer_content, keeps_frames):
    sample = tagged("a", 4, 60, 40)
    assert build(method, {**kwargs, "probability": 0.0}).augment(sample) is sample
    warm = build(method, {**kwargs, "schedule": ProbabilitySchedule(warmup_epochs=1)})
    assert warm.augment(sample, epoch=0) is sample
    assert warm.augment(sample, epoch=1) is not sample


@pytest.mark.parametrize(("method", "kwargs", "pointer_content", "keeps_frames"), CASES, ids=CASE_IDS)
def test_probability_fires_about_that_often(method, kwargs, pointer_content, keeps_frames):
    stage = build(method, {**kwargs, "probability": 0.5})
    samples = [tagged(f"k{i}", 2, 30, 20, seed=i) for i in range(200)]
    fired = sum(stage.augment(s, seed=3) is not s for s in samples)
    assert 70 <= fired <= 130


@pytest.mark.parametrize("method", ["noise", "gain", "channel_dropout", "spec_augment", "crop", "chunk_shuffle"])
def test_defaults_follow_the_plan(method):
    stage = build(method, {})
    expected = {"noise": 0.5, "gain": 0.5, "channel_dropout": 0.3, "spec_augment": 0.5, "crop": 0.5,
                "chunk_shuffle": 0.3}[method]
    assert stage.probability == expected and stage.name == method
    if method in ("gain", "channel_dropout", "spec_augment"):
        assert stage.mode == "shared"
    if method == "noise":
        assert stage.mode == "independent"  # the plan calls different noise more realistic


# ---------------------------------------------------------------------------------------------
# construction errors name the field and the value


@pytest.mark.parametrize(("method", "kwargs", "message"), [
    ("noise", {"probability": 1.5}, "probability must be between 0.0 and 1.0 (1.5 given)"),
    ("noise", {"level_min": 0.2, "level_max": 0.1},
     "level_min must be <= level_max (level_min=0.2, level_max=0.1 given)"),
    ("noise", {"level_min": -0.1}, "level_min must be a number >= 0.0 (-0.1 given)"),
    ("noise", {"mode": "both"}, "mode must be one of 'shared', 'independent' ('both' given)"),
    ("gain", {"scale_max": float("nan")}, "scale_max must be a number >= 0.0 (nan given)"),
    ("gain", {"scale_min": 1.5}, "scale_min must be <= scale_max (scale_min=1.5, scale_max=1.3 given)"),
    ("channel_dropout", {"dropout_rate": 1.5}, "dropout_rate must be a number >= 0.0 and <= 1.0 (1.5 given)"),
    ("spec_augment", {"fill": "avg"}, "fill must be one of 'zero', 'mean' ('avg' given)"),
    ("spec_augment", {"freq_width": (3, 1)}, "freq_width must be an int >= 0 or a pair [low, high]"),
    ("spec_augment", {"time_masks": -1}, "time_masks must be an int >= 0 (-1 given)"),
    ("spec_augment", {"time_mask_ratio": 0}, "time_mask_ratio must be a number > 0.0 and <= 1.0 (0 given)"),
    ("spec_augment", {"max_time_fraction": 2}, "max_time_fraction must be a number >= 0.0 and <= 1.0 (2 given)"),
    ("crop", {"min_len": 0}, "min_len must be an int >= 1 (0 given)"),
    ("crop", {"min_len": 10, "max_len": 5}, "min_len must be <= max_len (min_len=10, max_len=5 given)"),
    ("crop", {"context": 2.5}, "context must be an int >= 0 (2.5 given)"),
    ("chunk_shuffle", {"chunk_size": 0}, "chunk_size must be an int >= 1 (0 given)"),
    ("chunk_shuffle", {"schedule": 3}, "schedule must be a ProbabilitySchedule"),
])
def test_bad_settings_raise_at_construction(method, kwargs, message):
    with pytest.raises(ValueError) as error:
        build(method, kwargs)
    assert message in str(error.value)


def test_apply_rejects_params_without_a_mode():
    with pytest.raises(ValueError, match="mode 'shared' or 'independent'"):
        GainStage().apply(tagged("a", 2, 5, 3), {"scale": 2.0})


# ---------------------------------------------------------------------------------------------
# A1 noise


def test_noise_is_gaussian_with_the_drawn_level():
    sample = tagged("n", 64, 4000, 10, seed=1)
    stage = NoiseStage(probability=1.0, level_min=0.1, level_max=0.1, mode="shared")
    out = stage.augment(sample)
    noise = (out.raw_mel - sample.raw_mel).double()
    record = out.meta["augmentations"][0]
    assert record["mel_std"] == pytest.approx(float(sample.raw_mel.double().std()), rel=0.02)
    scaled = noise / (0.1 * record["mel_std"])
    assert float(scaled.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(scaled.std()) == pytest.approx(1.0, abs=0.01)
    assert float((scaled.abs() < 1).double().mean()) == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.01)
    rows = torch.corrcoef(scaled[:8])
    assert float((rows - torch.eye(8)).abs().max()) < 0.1  # rows are not copies of each other


def test_noise_shared_follows_pointers_and_independent_does_not():
    sample = tagged("n", 8, 300, 200, seed=2)
    shared = NoiseStage(probability=1.0, mode="shared").augment(sample)
    edit_noise = shared.edit_mel - sample.edit_mel
    raw_noise = shared.raw_mel - sample.raw_mel
    assert torch.equal(edit_noise, raw_noise[:, sample.pointers])
    independent = NoiseStage(probability=1.0, mode="independent").augment(sample)
    assert pointer_content_error(independent) > 0
    record = independent.meta["augmentations"][0]
    assert record["mode"] == "independent" and set(record["raw"]) == set(record["edit"]) == {
        "level", "mel_std", "offset", "row_stride", "sign_seed"}


def test_noise_skips_mels_without_spread():
    constant = Sample("c", torch.full((3, 10), 2.0), torch.full((3, 4), 2.0), torch.tensor([0, 1, 2, 9]))
    out = NoiseStage(probability=1.0, mode="shared").augment(constant)
    assert out.raw_mel is constant.raw_mel and out.meta["augmentations"][0]["mel_std"] == 0.0
    single = Sample("one", torch.tensor([[1.5]]), torch.tensor([[1.5]]), torch.tensor([0]))
    assert torch.equal(NoiseStage(probability=1.0, mode="independent").augment(single).raw_mel, single.raw_mel)


def test_noise_table_is_fixed_and_reads_are_checked():
    gaussian_table.cache_clear()
    first = gaussian_table()[:1000].clone()
    gaussian_table.cache_clear()
    assert torch.equal(gaussian_table()[:1000], first)
    assert gaussian_table(dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="leaves the 4194304-value table"):
        table_noise(2, 10, offset=(1 << 22) - 15, row_stride=10, sign_seed=0, noise_std=1.0)


def test_noise_on_a_mel_longer_than_the_table_row_limit():
    frames = (1 << 22) + 5
    mel = torch.zeros(2, frames)
    mel[0, 0] = 1.0
    out = NoiseStage(probability=1.0, mode="independent").augment(Sample("long", mel, mel[:, :1], torch.tensor([0])))
    gaussian_table.cache_clear()  # drop the larger table this test made
    assert out.raw_mel.shape == (2, frames) and bool(torch.isfinite(out.raw_mel).all())


# ---------------------------------------------------------------------------------------------
# A2 SpecAugment


def test_spec_augment_masks_the_drawn_spans_with_the_fill():
    sample = tagged("m", 16, 400, 300, seed=3)
    stage = SpecAugmentStage(probability=1.0, freq_masks=2, freq_width=(3, 5), time_masks=2, time_width=(10, 20),
                             fill="mean")
    out = stage.augment(sample)
    record = out.meta["augmentations"][0]
    mean = float(sample.raw_mel.mean())
    assert record["fill_value"] == pytest.approx(mean, rel=1e-6)
    assert len(record["freq_widths"]) == 2 and all(3 <= w <= 5 for w in record["freq_widths"])
    assert len(record["time_widths"]) == 2 and all(10 <= w <= 20 for w in record["time_widths"])
    bins = span_mask(16, record["freq_starts"], record["freq_widths"])
    frames = span_mask(400, record["time_starts"], record["time_widths"])
    masked = bins[:, None] | frames[None, :]
    assert bool((out.raw_mel[masked] == record["fill_value"]).all())
    assert torch.equal(out.raw_mel[~masked], sample.raw_mel[~masked])


def test_spec_augment_mask_wider_than_the_axis_covers_it():
    sample = tagged("w", 3, 8, 5)
    stage = SpecAugmentStage(probability=1.0, freq_masks=1, freq_width=(20, 20), time_masks=0)
    out = stage.augment(sample)
    assert out.meta["augmentations"][0]["freq_widths"] == [3] and bool((out.raw_mel == 0).all())


def test_spec_augment_time_budget_caps_the_masked_fraction():
    stage = SpecAugmentStage(probability=1.0, time_masks=(5, 9), time_width=(30, 60), freq_masks=0)
    for seed in range(20):
        sample = tagged(f"b{seed}", 2, 10 + 37 * seed, 5, seed=seed)
        record = stage.augment(sample).meta["augmentations"][0]
        assert sum(record["time_widths"]) <= math.floor(0.2 * sample.raw_frames)
    short = tagged("short", 2, 4, 3)
    assert stage.augment(short).meta["augmentations"][0]["time_widths"] == []


def test_spec_augment_adaptive_count_and_width_scale_with_length():
    stage = SpecAugmentStage(probability=1.0, freq_masks=0, adaptive=True, time_mask_multiplicity=0.01,
                             time_mask_ratio=0.002, max_time_fraction=1.0)
    for frames in (100, 2000, 10000):
        record = stage.augment(tagged(f"a{frames}", 1, frames, 1)).meta["augmentations"][0]
        assert len(record["time_widths"]) == math.floor(0.01 * frames) or math.floor(0.002 * frames) == 0
        assert all(1 <= w <= max(1, math.floor(0.002 * frames)) for w in record["time_widths"])
    assert stage.augment(tagged("tiny", 1, 50, 1)).meta["augmentations"][0]["time_widths"] == []


def test_spec_augment_zero_masks_disable_it():
    sample = tagged("z", 4, 50, 30)
    out = SpecAugmentStage(probability=1.0, freq_masks=0, time_masks=0).augment(sample)
    assert out.raw_mel is sample.raw_mel and out.edit_mel is sample.edit_mel


def test_spec_augment_independent_masks_the_edit_on_its_own_axis():
    sample = tagged("i", 4, 1000, 100, seed=5)
    stage = SpecAugmentStage(probability=1.0, freq_masks=0, time_masks=3, time_width=(5, 10), mode="independent")
    record = stage.augment(sample).meta["augmentations"][0]
    assert all(s + w <= 100 for s, w in zip(record["edit"]["time_starts"], record["edit"]["time_widths"]))


def test_span_mask_rejects_spans_outside_the_axis():
    with pytest.raises(ValueError, match=r"must lie inside \[0, 5\]"):
        span_mask(5, [3], [3])


# ---------------------------------------------------------------------------------------------
# A3 gain, A4 channel dropout


def test_gain_scales_by_the_recorded_factor():
    sample = tagged("g", 3, 20, 10, dtype=torch.float16)
    out = GainStage(probability=1.0, mode="independent").augment(sample)
    record = out.meta["augmentations"][0]
    assert 0.7 <= record["raw"]["scale"] <= 1.3 and record["raw"]["scale"] != record["edit"]["scale"]
    assert out.raw_mel.dtype == torch.float16
    assert torch.equal(out.raw_mel, sample.raw_mel * record["raw"]["scale"])


def test_channel_dropout_edges():
    sample = tagged("d", 6, 20, 10)
    none = ChannelDropoutStage(probability=1.0, dropout_rate=0.0).augment(sample)
    assert none.raw_mel is sample.raw_mel and none.meta["augmentations"][0]["channels"] == []
    every = ChannelDropoutStage(probability=1.0, dropout_rate=1.0).augment(sample)
    assert bool((every.raw_mel == 0).all()) and bool((every.edit_mel == 0).all())
    half = ChannelDropoutStage(probability=1.0, dropout_rate=0.5).augment(tagged("h", 200, 3, 2))
    assert 60 <= len(half.meta["augmentations"][0]["channels"]) <= 140
    with pytest.raises(ValueError, match=r"must lie in \[0, 6\)"):
        drop_channels(sample.raw_mel, [6])


# ---------------------------------------------------------------------------------------------
# B2 crop


@PROPERTY
@given(sample=tagged_samples(max_mels=3), start=st.integers(0, 300), length=st.integers(0, 300),
       context=st.integers(0, 20))
def test_crop_sample_keeps_the_window_and_the_raw_span_it_needs(sample, start, length, context):
    start = min(start, sample.edit_frames)
    out = crop_sample(sample, start, length, context)
    end = min(start + length, sample.edit_frames)
    assert torch.equal(out.edit_mel, sample.edit_mel[:, start:end])
    assert pointer_content_error(out) == 0.0
    if end > start:
        window = sample.pointers[start:end]
        raw_start = max(0, int(window.min()) - context)
        raw_end = min(sample.raw_frames, int(window.max()) + context + 1)
        assert torch.equal(out.raw_mel, sample.raw_mel[:, raw_start:raw_end])
        assert torch.equal(out.pointers, window - raw_start)
    else:
        assert out.edit_frames == 0 and torch.equal(out.raw_mel, sample.raw_mel)


def test_crop_leaves_short_edits_whole_and_copies_cuts():
    sample = tagged("c", 2, 100, 40)
    assert CropStage(probability=1.0, min_len=40).augment(sample).raw_mel is sample.raw_mel
    out = CropStage(probability=1.0, min_len=10, max_len=20, context=0).augment(sample)
    assert 10 <= out.edit_frames <= 20
    assert out.raw_mel.untyped_storage().data_ptr() != sample.raw_mel.untyped_storage().data_ptr()


def test_crop_never_clamps_pointers():
    sample = Sample("p", torch.arange(10.0).view(1, 10), torch.tensor([[2.0, 8.0]]), torch.tensor([2, 8]))
    with pytest.raises(ValueError, match="drops frames the edit window points to"):
        cut_sample(sample, 0, 2, 3, 10)
    with pytest.raises(ValueError, match="crop start must be an int in"):
        crop_sample(sample, 3, 1, 0)


# ---------------------------------------------------------------------------------------------
# B1 chunk shuffle


def plan_reference_shuffle(raw_mel, pointers, order, chunk_size):
    """The plan's per-frame dict algorithm, with a given order (the test oracle)."""
    raw_time = raw_mel.shape[1]
    starts = list(range(0, raw_time, chunk_size))
    chunks = [raw_mel[:, s:s + chunk_size] for s in starts]
    old_to_new, new_pos = {}, 0
    for old_chunk in order:
        for offset in range(chunks[old_chunk].shape[1]):
            old_to_new[starts[old_chunk] + offset] = new_pos + offset
        new_pos += chunks[old_chunk].shape[1]
    shuffled = torch.cat([chunks[i] for i in order], dim=1)
    return shuffled, torch.tensor([old_to_new[int(p)] for p in pointers], dtype=torch.int64)


@PROPERTY
@given(sample=tagged_samples(max_mels=2, max_raw_frames=600, max_edit_frames=60), chunk_size=st.integers(1, 80),
       order_seed=st.integers(0, 1000))
def test_chunk_shuffle_matches_the_plan_reference(sample, chunk_size, order_seed):
    n_chunks = chunk_count(sample.raw_frames, chunk_size)
    order = torch.randperm(n_chunks, generator=torch.Generator().manual_seed(order_seed)).tolist()
    out = shuffle_chunks(sample, order, chunk_size)
    raw, pointers = plan_reference_shuffle(sample.raw_mel, sample.pointers, order, chunk_size)
    assert torch.equal(out.raw_mel, raw) and torch.equal(out.pointers, pointers)
    assert out.edit_mel is sample.edit_mel


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_chunk_shuffle_many_chunks_path(chunk_size):
    sample = tagged("many", 3, chunk_size * CAT_MAX_CHUNKS + 2, 100, seed=chunk_size)  # a remainder chunk too
    out = check_stage(ChunkShuffleStage(probability=1.0, chunk_size=chunk_size), sample)
    order = out.meta["augmentations"][0]["order"]
    assert len(order) > CAT_MAX_CHUNKS
    assert torch.equal(out.raw_mel, plan_reference_shuffle(sample.raw_mel, sample.pointers, order, chunk_size)[0])


def test_chunk_shuffle_moves_the_remainder_chunk():
    raw = torch.arange(5.0).view(1, 5)
    sample = Sample("r", raw, raw[:, [4, 1]], torch.tensor([4, 1]))
    out = shuffle_chunks(sample, [2, 1, 0], 2)
    assert out.raw_mel.tolist() == [[4.0, 2.0, 3.0, 0.0, 1.0]] and out.pointers.tolist() == [0, 4]
    assert shuffle_chunks(sample, [0, 1, 2], 2) is sample
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(3\)"):
        shuffle_chunks(sample, [0, 1], 2)
    one_chunk = ChunkShuffleStage(probability=1.0, chunk_size=10).augment(sample)
    assert one_chunk is sample  # one chunk cannot move: unchanged and unrecorded


@pytest.mark.parametrize("domain, expected", [("linear", [[-4.0, 1.0]]),
                                              ("log", [[-2.0 + math.log(2.0), 0.5 + math.log(2.0)]]),
                                              ("db", [[-2.0 + 10 * math.log10(2.0), 0.5 + 10 * math.log10(2.0)]])])
def test_gain_domains_scale_linear_mels_and_offset_log_mels(domain, expected):
    sample = Sample("g", torch.tensor([[-2.0, 0.5]]), torch.tensor([[0.5]]), torch.tensor([1]))
    out = GainStage(probability=1.0, scale_min=2.0, scale_max=2.0, domain=domain).augment(sample)
    assert out.raw_mel[0].tolist() == pytest.approx(expected[0])
    assert torch.equal(out.edit_mel, out.raw_mel[:, [1]])


def test_gain_in_a_log_domain_needs_positive_factors():
    with pytest.raises(ValueError, match="scale_min must be > 0 for domain 'log'"):
        GainStage(scale_min=0.0, scale_max=1.0, domain="log")

