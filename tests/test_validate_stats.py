"""Statistics of comparisons and the effective data multiplier, on known numbers."""

import pytest

from pipelines.validation.protocols import Arm, multiplier, subset_sizes
from pipelines.validation.report import METRICS, build_results, render_markdown
from pipelines.validation.stats import paired_comparison, summarise, t_quantile_975


def test_t_quantiles():
    assert t_quantile_975(2) == 4.303  # 3 seeds
    assert t_quantile_975(4) == 2.776  # 5 seeds
    assert t_quantile_975(200) == pytest.approx(1.972, abs=1e-3)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        t_quantile_975(0)


def test_paired_interval_on_known_numbers():
    # deltas 0.10, 0.11, 0.12: mean 0.11, sd 0.01, half width 4.303 * 0.01 / sqrt(3) = 0.02484
    c = paired_comparison([0.60, 0.51, 0.72], [0.50, 0.40, 0.60], "exact")
    assert c["delta_mean"] == pytest.approx(0.11)
    assert c["ci95"] == pytest.approx([0.11 - 0.024844, 0.11 + 0.024844], abs=1e-5)
    assert (c["verdict"], c["agree"], c["seeds"]) == ("helps", 3, 3)
    worse = paired_comparison([0.40, 0.30, 0.50], [0.50, 0.41, 0.62], "exact")
    assert (worse["verdict"], worse["agree"]) == ("hurts", 3)
    lower = paired_comparison([3.0, 3.1, 3.2], [1.0, 1.0, 1.0], "median_abs_err")  # errors went up
    assert lower["verdict"] == "hurts"
    mixed = paired_comparison([0.5, 0.4, 0.6], [0.45, 0.45, 0.45], "exact")
    assert (mixed["verdict"], mixed["agree"]) == ("unresolved", 2)
    alone = paired_comparison([0.5], [0.4], "exact")
    assert alone["ci95"] is None and alone["verdict"] == "unresolved"
    with pytest.raises(ValueError, match="same seeds"):
        paired_comparison([0.5, 0.4], [0.4], "exact")


def test_summarise_one_seed_has_no_std():
    assert summarise([2.0]) == {"mean": 2.0, "std": None}
    assert summarise([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2 ** 0.5)}


def test_multiplier_interpolates_on_log_size_and_never_extrapolates():
    sizes, scores = [5, 10, 20], [0.40, 0.50, 0.55]
    inside = multiplier(sizes, scores, 5, 0.525)  # halfway between 10 and 20 in log: sqrt(200)
    assert inside["n_eq"] == pytest.approx(200 ** 0.5) and inside["bound"] is None
    assert inside["multiplier"] == pytest.approx(200 ** 0.5 / 5)
    above = multiplier(sizes, scores, 10, 0.60)
    assert (above["bound"], above["multiplier"]) == ("more than", 2.0)
    below = multiplier(sizes, scores, 5, 0.30)
    assert (below["bound"], below["multiplier"]) == ("less than", 1.0)
    assert subset_sizes(8) == [2, 4, 8] and subset_sizes(2) == [1, 2]


def _run(arm: str, seed: int, decoded: float, exact: float) -> dict:
    """What :func:`train_run` returns, with only the two scores the test reads set."""
    scores = {m: 0.5 for m in METRICS} | {"decoded_exact": decoded, "exact": exact}
    instability = {"nonfinite_loss": 0, "nonfinite_grad": 0, "grad_norm_spikes": 0, "loss_spikes": 0,
                   "gap_growing": False, "gap_last": 0.0}
    return {"arm": arm, "seed": seed, "final": {"stored": scores}, "steps": 10, "best_step": 10, "stopped_by": "cap",
            "penalty": 4.0, "baseline_weight": 0.0, "holdout_best": {"decoded_exact": decoded}, "learned": {},
            "instability": instability, "data_wait_fraction": 0.0, "seconds_train": 1.0, "seconds_holdout": 1.0,
            "seconds_final": 1.0, "epochs": 1, "parameters": 1, "loss": [], "curve": []}


def test_ablation_reports_what_each_block_adds_as_all_minus_the_arm_without_it():
    arms = [Arm("none", None), Arm("all", None, against="none"),
            Arm("without_noise", None, against="none", leaves_out="noise"),
            Arm("without_crop", None, against="none", leaves_out="crop")]
    scores = {"none": [0.90, 0.91, 0.92], "all": [0.95, 0.96, 0.97],
              "without_noise": [0.97, 0.98, 0.99],  # removing noise raises the score: noise hurts
              "without_crop": [0.85, 0.85, 0.86]}  # removing crop lowers it: crop helps
    runs = [_run(name, seed, value, value - 0.2) for name, values in scores.items()
            for seed, value in enumerate(values)]
    baseline = {m: 0.5 for m in METRICS} | {"penalty": 4.0, "conditions": {"stored": {"decoded_exact": 0.5}}}
    results = build_results("ablation", arms, runs, baseline)
    added = {(c["block"], c["metric"]): c for c in results["contributions"] if c["condition"] == "stored"}
    noise, crop = added["noise", "decoded_exact"], added["crop", "decoded_exact"]
    assert noise["delta_mean"] == pytest.approx(-0.02) and (noise["verdict"], noise["agree"]) == ("hurts", 3)
    assert crop["delta_mean"] == pytest.approx(0.1067, abs=1e-4) and crop["verdict"] == "helps"
    assert added["crop", "exact"]["delta_mean"] == pytest.approx(crop["delta_mean"])
    table = render_markdown({**results, "runs_trained": 12, "runs_from_cache": 0, "seconds": 1.0})
    assert "| noise | decoded_exact | 0.980 ± 0.010 | -0.020 |" in table
    assert "contributions" not in build_results("quick", arms[:2], runs[:6], baseline)
    with pytest.raises(ValueError, match="'all'"):
        build_results("ablation", [arms[0], arms[2]], runs[:3] + runs[6:9], baseline)
