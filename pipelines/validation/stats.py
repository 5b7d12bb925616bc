"""Statistics of a comparison over seeds: mean and std, paired t-intervals.

A seed's score for a metric is its best checkpoint's (chosen on held-out training recordings,
never on the validation set) scored once on the validation set. Arms are compared to a reference arm
(all-off) by the per-seed differences, which pair runs with the same initialisation and data
order: mean difference, a 95% t-interval ``mean +- t(0.975, n-1) * sd / sqrt(n)`` (t = 4.30 for
3 seeds, 2.78 for 5), and a verdict: ``helps`` or ``hurts`` when the interval excludes 0
(direction by whether the metric is higher- or lower-is-better), else ``unresolved``. ``agree``
counts the seeds whose difference has the sign of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["LOWER_IS_BETTER", "paired_comparison", "summarise", "t_quantile_975"]

LOWER_IS_BETTER = frozenset({"median_abs_err", "loss"})

_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
          2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
          2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table to 30, then the
    Cornish-Fisher expansion, within 0.001).

    >>> t_quantile_975(2), t_quantile_975(4), round(t_quantile_975(60), 3)
    (4.303, 2.776, 2.0)
    """
    if df < 1:
        raise ValueError(f"a t-interval needs at least 2 seeds (df = {df})")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def summarise(values: Sequence[float]) -> dict[str, float | None]:
    """``{"mean", "std"}`` (sample std, ddof 1; null for one value).

    >>> summarise([1.0, 2.0, 3.0])
    {'mean': 2.0, 'std': 1.0}
    """
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std}


def paired_comparison(values: Sequence[float], reference: Sequence[float], metric: str) -> dict:
    """Per-seed differences ``values - reference`` (same seeds, same order) and their verdict.

    Returns ``{"delta_mean", "ci95": [lo, hi], "verdict", "agree", "seeds", "deltas"}``; with one
    seed the interval is null and the verdict ``unresolved``.

    >>> c = paired_comparison([0.5, 0.6, 0.7], [0.4, 0.4, 0.4], "exact")
    >>> round(c["delta_mean"], 3), [round(x, 3) for x in c["ci95"]], c["verdict"], c["agree"]
    (0.2, [-0.048, 0.448], 'unresolved', 3)
    """
    if len(values) != len(reference) or not values:
        raise ValueError(f"paired comparison needs the same seeds on both sides ({len(values)} vs {len(reference)})")
    deltas = [v - r for v, r in zip(values, reference)]
    n = len(deltas)
    mean = sum(deltas) / n
    sign = (mean > 0) - (mean < 0)
    agree = sum(1 for d in deltas if sign and (d > 0) - (d < 0) == sign)
    if n < 2:
        return {"delta_mean": mean, "ci95": None, "verdict": "unresolved", "agree": agree, "seeds": n, "deltas": deltas}
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    better = -1 if metric in LOWER_IS_BETTER else 1
    verdict = ("helps" if mean * better > 0 else "hurts") if lo > 0 or hi < 0 else "unresolved"
    return {"delta_mean": mean, "ci95": [lo, hi], "verdict": verdict, "agree": agree, "seeds": n, "deltas": deltas}
