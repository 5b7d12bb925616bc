"""Statistics of comparisons and the effective data multiplier, on known numbers."""

import pytest

from pipelines.validation.protocols import multiplier, subset_sizes
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
