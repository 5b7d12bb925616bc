"""The instrument of ``validate``: the plateau rule, penalties chosen on training recordings only,
and whole-recording scoring (chunked scores equal one pass; the untrained model is the baseline)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.build import load_config
from pipelines.model import ModelSize, PointerNet
from pipelines.validation import run as run_module
from pipelines.validation import train as train_module
from pipelines.validation.baseline import nearest_neighbour_scorer
from pipelines.validation.evaluate import (
    model_parts,
    model_scorer,
    score_samples,
    score_weights,
    select_decoding,
    select_penalty,
)
from pipelines.validation.plateau import Plateau
from pipelines.validation.protocols import holdout_split, protocol_arms
from pipelines.validation.train import RunSpec, TrainSettings, load_samples, train_run
from streams import Sample
from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import synthetic_sample

CONFIG = {
    "seed": 0,
    "source": {"urls": "unused"},
    "augmentation": {"enabled": True, "gain": {"enabled": True, "probability": 0.5, "domain": "log"}},
    "shuffle": {"buffer_size": 4},
    "batching": {"batch_size": 2},
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """6 training recordings (one sample each) and 2 validation ones, keys prefixed by split."""
    root = tmp_path_factory.mktemp("instrument")
    urls = {}
    for split, count, seed in (("train", 6, 0), ("val", 2, 1)):
        samples = []
        for i in range(count):
            sample = synthetic_sample(f"{split}-{i}", seed=seed + 10 * i, n_mels=8, raw_frames=80 + 9 * i)
            samples.append(sample.replace(meta={**sample.meta, "recording": f"{split}-rec{i}"}))
        (root / split).mkdir()
        write_shards(samples, str(root / split / f"{split}-%06d.tar"), max_samples=8)
        urls[split] = str(root / split / f"{split}-000000.tar")
    return urls


def _noisy(sample, scale, seed):
    """The sample with noise on its edit, so that argmax and decoding differ."""
    noise = torch.randn(sample.edit_mel.shape, generator=torch.Generator().manual_seed(seed))
    return sample.replace(edit_mel=sample.edit_mel.float() + scale * noise)


# the plateau rule ---------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=30), patience=st.integers(1, 6),
       every=st.integers(1, 3))
def test_plateau_stops_exactly_patience_steps_after_the_best(values, patience, every):
    rule = Plateau(patience * every)
    for k, value in enumerate(values, start=1):
        rule.update(k * every, value)
        best_k = max(range(len(values[:k])), key=lambda j: (values[j], -j)) + 1  # first of the maxima
        assert rule.best == values[best_k - 1] and rule.best_step == best_k * every
        assert rule.stopped(k * every) == (k - best_k >= patience)


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.tuples(st.sampled_from([0.5, 0.6]), st.floats(-5, 0)), min_size=1, max_size=20))
def test_plateau_breaks_ties_by_the_tiebreak(scores):
    rule = Plateau(patience=100)
    for k, (value, tiebreak) in enumerate(scores, start=1):
        rule.update(k, value, tiebreak)
    best_k = max(range(len(scores)), key=lambda j: (scores[j], -j)) + 1  # best score, then best tie-break, first
    assert rule.best_step == best_k and rule.best == scores[best_k - 1][0]


def test_plateau_needs_more_than_min_delta_and_increasing_steps():
    rule = Plateau(patience=2, min_delta=0.05)
    assert [rule.update(s, v) for s, v in [(1, 0.5), (2, 0.54), (3, 0.56)]] == [True, False, True]
    assert not rule.stopped(4) and rule.stopped(5)
    with pytest.raises(ValueError, match="steps must increase"):
        rule.update(3, 0.9)
    with pytest.raises(ValueError, match="--patience"):
        Plateau(0)
    assert not Plateau(3).stopped(100)  # nothing recorded yet


def _spec(shards, arm, config, **overrides):
    train = load_config({**CONFIG, "source": {"urls": shards["train"]}})
    names = [f"train-rec{i}" for i in range(6)]
    recordings, holdout = holdout_split(names, 0.34, seed=0)
    base = {"steps": 8, "eval_every": 2, "patience": 4, "window": 30, "batch_size": 2, "workers": 0,
            "holdout_frames": 40, "penalties": (1.0, 8.0)}
    return RunSpec(arm, 0, config or train, TrainSettings(**{**base, **overrides}), shards["val"], train,
                   recordings, holdout)


@pytest.mark.parametrize("steps, patience", [(8, 2), (8, 100), (3, 1)])
def test_every_arm_stops_by_the_same_rule_or_the_cap(shards, steps, patience):
    train = load_config({**CONFIG, "source": {"urls": shards["train"]}})
    for arm in protocol_arms("quick", train):
        run = train_run(_spec(shards, arm.name, arm.config, steps=steps, patience=patience))
        scored = [e["step"] for e in run["curve"]]
        assert scored == [s for s in range(run["steps"] + 1) if s % 2 == 0 or s == steps]  # step 0: untrained
        assert len(run["loss"]) == run["steps"] <= steps
        best = max(run["curve"], key=lambda e: (-e["holdout"]["loss"], e["holdout"]["decoded_exact"], -e["step"]))
        best = best["step"]  # the lowest held-out loss, ties broken by decoded exact, the first of equals
        assert run["best_step"] == best
        # "plateau" when the rule is met, at the cap too (a run whose best is patience steps before it)
        plateaued = run["steps"] - run["best_step"] >= patience
        assert run["stopped_by"] == ("plateau" if plateaued else "cap")
        assert run["steps"] == steps or plateaued


# penalties are chosen on held-out training recordings only -----------------------------------------

def _spy_on_penalty_choices(monkeypatch, module):
    """Record the keys of every sample scored with more than one penalty (a penalty choice)."""
    chosen_on: list[str] = []
    real = module.score_samples

    def spy(scorer, samples, penalties=(4.0,), **kwargs):
        if len(penalties) > 1:
            chosen_on.extend(s.key for s in samples)
        return real(scorer, samples, penalties, **kwargs)
    monkeypatch.setattr(module, "score_samples", spy)
    return chosen_on


def test_baseline_penalty_is_chosen_on_training_recordings_only(shards, monkeypatch):
    chosen_on = _spy_on_penalty_choices(monkeypatch, run_module)
    spec = _spec(shards, "nn", None)
    out = run_module.run_baseline(spec.reference, spec.holdout, shards["val"], spec.settings)
    assert chosen_on and all(key.startswith("train-") for key in chosen_on)
    assert {f"train-{r[-1]}" for r in spec.holdout} == set(chosen_on)
    assert out["penalty"] in (1.0, 8.0) and [p for p, _ in out["penalty_grid"]] == [1.0, 8.0]
    assert set(out["conditions"]) == {"stored"}


def test_model_penalty_is_chosen_on_training_recordings_only(shards, monkeypatch):
    chosen_on = _spy_on_penalty_choices(monkeypatch, train_module)
    run = train_run(_spec(shards, "all", None, steps=2, patience=2))
    assert chosen_on and all(key.startswith("train-") for key in chosen_on)
    assert run["penalty"] in (1.0, 8.0) and set(run["final"]) == {"stored"}


def test_the_kept_checkpoints_decoding_is_chosen_on_whole_held_out_recordings(shards, monkeypatch):
    """Checkpoints score excerpts of ``holdout_frames`` rows; the penalty and baseline weight of the
    kept one are chosen on the held-out recordings whole (excerpts could not tell 256 from 4096 on
    real music), every weight from one scoring."""
    grids: list[tuple[tuple[str, ...], int | None]] = []
    weighted: list[tuple[tuple[str, ...], int | None, tuple[float, ...]]] = []
    real, real_weights = train_module.score_samples, train_module.score_weights

    def spy(scorer, samples, penalties=(4.0,), **kwargs):
        if len(penalties) > 1:
            grids.append((tuple(s.key for s in samples), kwargs.get("rows")))
        return real(scorer, samples, penalties, **kwargs)

    def spy_weights(parts, samples, weights, penalties, **kwargs):
        weighted.append((tuple(s.key for s in samples), kwargs.get("rows"), tuple(weights)))
        return real_weights(parts, samples, weights, penalties, **kwargs)
    monkeypatch.setattr(train_module, "score_samples", spy)
    monkeypatch.setattr(train_module, "score_weights", spy_weights)
    run = train_run(_spec(shards, "all", None, steps=4, patience=4, holdout_frames=12, baseline_weights=(0.0, 2.0)))
    assert [rows for _, rows in grids] == [12] * len(run["curve"])
    assert [(rows, weights) for _, rows, weights in weighted] == [(None, (0.0, 2.0))]
    assert [w for w, _, _ in run["decoding_grid"]] == [0.0, 0.0, 2.0, 2.0] and run["baseline_weight"] in (0.0, 2.0)
    chosen = max(run["decoding_grid"], key=lambda row: (row[2], -row[0], -row[1]))
    assert (run["baseline_weight"], run["penalty"]) == tuple(chosen[:2])
    held = grids[0][0]
    assert all(keys == held for keys, _ in grids) and weighted[0][0] == held
    assert all(k.startswith("train-") for k in held)


def test_a_grid_of_weights_scores_as_one_scoring_per_weight(shards):
    """:func:`score_weights` (one matmul for every weight) gives :func:`score_samples` of each
    weight's own scorer."""
    samples = [_noisy(s, 1.0, i) for i, s in enumerate(load_samples(shards["val"]))]
    with torch.random.fork_rng():
        torch.manual_seed(3)
        net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2, diagonal=2)).eval()
    with torch.no_grad():
        net.learned_scale.fill_(2.0)
        net.diagonal.copy_(torch.tensor([0.2, 0.5, 1.0, 0.4, 0.1]))
    grid = score_weights(model_parts(net, torch.device("cpu")), samples, (0.0, 1.0, 3.0), (1.0, 8.0), chunk_frames=9)
    for weight in (0.0, 1.0, 3.0):
        alone = score_samples(model_scorer(net, torch.device("cpu"), weight), samples, (1.0, 8.0), chunk_frames=9)
        for penalty in (1.0, 8.0):
            for name, value in alone[penalty].items():
                assert grid[weight][penalty][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (weight, penalty, name)


def test_the_chosen_penalty_ignores_what_validation_would_prefer():
    # validation would take 8 (0.9), the held-out training recordings say 1: 1 is used
    assert select_penalty({1.0: {"decoded_exact": 0.7}, 8.0: {"decoded_exact": 0.6}}) == 1.0


def test_holdout_split_is_by_recording_and_disjoint():
    names = [f"r{i}" for i in range(16)]
    trained, held = holdout_split(names + names[:4], 0.125, seed=3)  # repeated names: one recording each
    assert len(held) == 2 and not set(trained) & set(held) and set(trained) | set(held) == set(names)
    assert holdout_split(names, 0.125, seed=3) == (trained, held)
    with pytest.raises(ValueError, match="at least 2"):
        holdout_split(["only"], 0.5, seed=0)


# whole-recording scoring ---------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(chunk=st.integers(1, 200), rows=st.one_of(st.none(), st.integers(1, 120)))
def test_chunked_scoring_equals_one_pass(shards, chunk, rows):
    samples = [_noisy(s, 1.5, i) for i, s in enumerate(load_samples(shards["val"]))]
    whole = score_samples(nearest_neighbour_scorer, samples, (1.0, 8.0), rows=rows, chunk_frames=10_000)
    chunked = score_samples(nearest_neighbour_scorer, samples, (1.0, 8.0), rows=rows, chunk_frames=chunk)
    for penalty in (1.0, 8.0):
        for name, value in whole[penalty].items():
            assert chunked[penalty][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (penalty, name)


def test_whole_recordings_score_every_edit_frame_and_excerpts_only_theirs(shards):
    samples = load_samples(shards["val"])
    counted = []

    def counting(sample):
        rows = nearest_neighbour_scorer(sample)

        def score(start, stop):
            counted.append(stop - start)
            return rows(start, stop)
        return score
    score_samples(counting, samples, (4.0,), rows=None, chunk_frames=16)
    assert sum(counted) == sum(s.edit_frames for s in samples) and max(counted) <= 16
    counted.clear()
    score_samples(counting, samples, (4.0,), rows=20, chunk_frames=16)
    assert sum(counted) == 20 * len(samples)


def test_untrained_model_scores_as_the_nearest_neighbour(shards):
    samples = [_noisy(s, 1.0, i) for i, s in enumerate(load_samples(shards["val"]))]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2, diagonal=2)).eval()
    ours = score_samples(model_scorer(net, torch.device("cpu")), samples, (1.0, 8.0), chunk_frames=7)
    theirs = score_samples(nearest_neighbour_scorer, samples, (1.0, 8.0), chunk_frames=64)
    for penalty in (1.0, 8.0):
        for name, value in theirs[penalty].items():
            assert ours[penalty][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (penalty, name)


def test_model_rows_of_a_whole_recording_equal_its_batched_scores():
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2, diagonal=3)).eval()
    with torch.no_grad():
        net.learned_scale.fill_(1.0)
        net.diagonal.copy_(torch.rand(7, generator=generator))
        raw, edit = torch.randn(1, 8, 40, generator=generator), torch.randn(1, 8, 25, generator=generator)
        ones = torch.ones(1, 40, dtype=torch.bool), torch.ones(1, 25, dtype=torch.bool)
        full = net(raw, ones[0], edit, ones[1])[0]
        raw_f, edit_f = net.encode(raw, ones[0])[0], net.encode(edit, ones[1])[0]
        rows = torch.cat([net.score_rows(raw_f, edit_f, a, min(25, a + 4)) for a in range(0, 25, 4)])
    torch.testing.assert_close(rows, full, atol=1e-4, rtol=1e-4)
    assert math.isfinite(float(full.sum()))


def test_a_baseline_weight_adds_the_nearest_neighbours_scores():
    """With no diagonal smoothing, the model's rows at weight w are its rows at 0 plus w times the
    nearest neighbour's (``cos / COSINE_TEMPERATURE``)."""
    generator = torch.Generator().manual_seed(2)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2, diagonal=0)).eval()
    raw, edit = torch.randn(8, 40, generator=generator), torch.randn(8, 25, generator=generator)
    sample = Sample("a", raw, edit, torch.arange(25))
    with torch.no_grad():
        net.learned_scale.fill_(1.0)
        at = {w: model_scorer(net, torch.device("cpu"), w)(sample)(0, 25) for w in (0.0, 3.0)}
    torch.testing.assert_close(at[3.0], at[0.0] + 3.0 * nearest_neighbour_scorer(sample)(0, 25), atol=1e-4, rtol=1e-4)


def test_decoding_choice_prefers_the_smaller_weight_and_penalty_on_ties():
    grid = {3.0: {1.0: {"decoded_exact": 0.8}}, 0.0: {8.0: {"decoded_exact": 0.8}, 1.0: {"decoded_exact": 0.8}}}
    assert select_decoding(grid) == (0.0, 1.0)
    grid[3.0][1.0]["decoded_exact"] = 0.81
    assert select_decoding(grid) == (3.0, 1.0)


@pytest.mark.parametrize("weights", [(), (-1.0,), (float("nan"),)])
def test_baseline_weights_are_checked(weights):
    with pytest.raises(ValueError, match="--baseline-weights"):
        TrainSettings(baseline_weights=weights)
