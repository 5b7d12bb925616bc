"""The outputs of a validation: ``results.json``, a PNG of the curves and a markdown summary.

``results.json`` (all metrics are fractions except ``median_abs_err``, in raw frames)::

    {"protocol": "quick", "settings": {...}, "seconds": s, "train": URLS, "val": URLS,
     "arms": {NAME: {"recordings": k or null, "against": NAME or null,
                     "per_seed": [{"seed": S, "exact": x, "within_2": x, "cut_f1": x, "median_abs_err": x,
                                   "conditions": {COND: {METRIC: x}}, "instability": {...},
                                   "data_wait_fraction": x, "seconds_train": s, "seconds_eval": s}, ...],
                     "exact": {"mean": x, "std": x}, "within_2": {...}, "cut_f1": {...}, "median_abs_err": {...},
                     "conditions": {COND: {METRIC: {"mean": x, "std": x}}},
                     "curves": {"loss": [[per step] per seed], "eval_steps": [...], "exact": [[...] per seed]}}},
     "baselines": {"nearest_neighbour": {"exact": x, "within_2": x, "cut_f1": x, "median_abs_err": x,
                                         "conditions": {COND: {METRIC: x}}}},
     "comparisons": [{"arm": "all", "against": "none", "metric": "exact", "condition": "stored",
                      "delta_mean": x, "ci95": [lo, hi], "verdict": "helps"|"hurts"|"unresolved",
                      "agree": n, "seeds": n, "deltas": [...]}, ...],
     "multiplier": [{"arm": "all@k", "metric": "exact", "size": k, "n_eq": x, "multiplier": x,
                     "bound": null|"more than"|"less than"}, ...]}

Top-level arm metrics are the ``stored`` condition; each seed's value is the mean of its last 3
evaluations (:func:`.stats.seed_score`); the perturbed conditions are scored at the final
evaluation only (see :class:`.train.TrainSettings`). COND is ``stored``, ``like_training``,
``unlike_training``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from statistics import fmean

from .perturb import CONDITIONS
from .protocols import Arm, multiplier
from .stats import paired_comparison, seed_score, summarise

__all__ = ["COMPARED", "METRICS", "build_results", "render_markdown", "write_outputs", "write_plot"]

METRICS = ("exact", "within_2", "cut_f1", "median_abs_err", "decoded_exact")
COMPARED = ("exact", "within_2", "cut_f1")


def _arm_block(arm: Arm, runs: Sequence[dict]) -> dict:
    per_seed = []
    for run in runs:
        conditions = {c: {m: seed_score(run["evaluations"], m, c) for m in METRICS} for c in CONDITIONS}
        per_seed.append({"seed": run["seed"], **conditions["stored"], "conditions": conditions,
                         "instability": run["instability"], "data_wait_fraction": run["data_wait_fraction"],
                         "seconds_train": run["seconds_train"], "seconds_eval": run["seconds_eval"],
                         "epochs": run["epochs"], "parameters": run["parameters"]})
    return {"recordings": len(arm.recordings) if arm.recordings else None, "against": arm.against,
            "per_seed": per_seed, **{m: summarise([s[m] for s in per_seed]) for m in METRICS},
            "conditions": {c: {m: summarise([s["conditions"][c][m] for s in per_seed]) for m in METRICS}
                           for c in CONDITIONS},
            "curves": {"loss": [run["loss"] for run in runs],
                       "eval_steps": [e["step"] for e in runs[0]["evaluations"]],
                       "exact": [[e["conditions"]["stored"]["exact"] for e in run["evaluations"]] for run in runs]}}


def build_results(protocol: str, arms: Sequence[Arm], runs: Sequence[dict], baseline: dict[str, dict],
                  **context) -> dict:
    """The results document (see the module docstring) from the runs of every arm and seed."""
    by_arm = {arm.name: [r for r in runs if r["arm"] == arm.name] for arm in arms}
    blocks = {arm.name: _arm_block(arm, by_arm[arm.name]) for arm in arms}
    comparisons = []
    for arm in arms:
        if arm.against is None:
            continue
        ours, theirs = blocks[arm.name]["per_seed"], blocks[arm.against]["per_seed"]
        if [s["seed"] for s in ours] != [s["seed"] for s in theirs]:
            raise ValueError(f"arms {arm.name!r} and {arm.against!r} ran different seeds; cannot pair them")
        for condition in CONDITIONS:
            for metric in COMPARED:
                comparison = paired_comparison([s["conditions"][condition][metric] for s in ours],
                                               [s["conditions"][condition][metric] for s in theirs], metric)
                comparisons.append({"arm": arm.name, "against": arm.against, "metric": metric,
                                    "condition": condition, **comparison})
    results = {"protocol": protocol, **context, "arms": blocks,
               "baselines": {"nearest_neighbour": {**baseline["stored"], "conditions": baseline}},
               "comparisons": comparisons}
    if protocol == "multiplier":
        results["multiplier"] = _multipliers(arms, blocks)
    return results


def _multipliers(arms: Sequence[Arm], blocks: dict[str, dict]) -> list[dict]:
    plain = sorted((blocks[a.name]["recordings"], a.name) for a in arms if a.name.startswith("none@"))
    sizes = [k for k, _ in plain]
    out = []
    for metric in COMPARED:
        scores = [blocks[name][metric]["mean"] for _, name in plain]
        for arm in arms:
            if arm.name.startswith("all@"):
                block = blocks[arm.name]
                out.append({"arm": arm.name, "metric": metric,
                            **multiplier(sizes, scores, block["recordings"], block[metric]["mean"])})
    return out


def _pm(summary: dict, digits: int = 3) -> str:
    if summary["std"] is None:
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def render_markdown(results: dict) -> str:
    """The summary tables: scores per arm and condition, comparisons, instability, multiplier."""
    lines = [f"### Protocol `{results['protocol']}`", "",
             "| arm | exact | within 2 | cut F1 | median err | exact, like training | exact, unlike training |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, block in results["arms"].items():
        cond = block["conditions"]
        lines.append(f"| {name} | {_pm(block['exact'])} | {_pm(block['within_2'])} | {_pm(block['cut_f1'])} | "
                     f"{_pm(block['median_abs_err'], 1)} | {_pm(cond['like_training']['exact'])} | "
                     f"{_pm(cond['unlike_training']['exact'])} |")
    nn = results["baselines"]["nearest_neighbour"]
    lines.append(f"| nearest neighbour (no training) | {nn['exact']:.3f} | {nn['within_2']:.3f} | "
                 f"{nn['cut_f1']:.3f} | {nn['median_abs_err']:.1f} | "
                 f"{nn['conditions']['like_training']['exact']:.3f} | "
                 f"{nn['conditions']['unlike_training']['exact']:.3f} |")
    lines += ["", "| arm | against | metric | condition | delta (mean) | 95% CI | verdict | seeds agreeing |",
              "| --- | --- | --- | --- | ---: | --- | --- | ---: |"]
    for c in results["comparisons"]:
        if c["metric"] != "exact" and c["condition"] != "stored":
            continue
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "n/a"
        lines.append(f"| {c['arm']} | {c['against']} | {c['metric']} | {c['condition']} | {c['delta_mean']:+.3f} | "
                     f"{ci} | {c['verdict']} | {c['agree']}/{c['seeds']} |")
    lines += ["", ("| arm | non-finite | grad-norm spikes | loss spikes | gap growing | val - train loss (last) | "
                   "data wait | train s | eval s |"),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, block in results["arms"].items():
        seeds = block["per_seed"]
        inst = [s["instability"] for s in seeds]
        nonfinite = sum(i["nonfinite_loss"] + i["nonfinite_grad"] for i in inst)
        lines.append(f"| {name} | {nonfinite} | {sum(i['grad_norm_spikes'] for i in inst)} | "
                     f"{sum(i['loss_spikes'] for i in inst)} | {sum(i['gap_growing'] for i in inst)}/{len(inst)} | "
                     f"{fmean([i['gap_last'] for i in inst]):+.2f} | "
                     f"{fmean([s['data_wait_fraction'] for s in seeds]):.1%} | "
                     f"{fmean([s['seconds_train'] for s in seeds]):.0f} | "
                     f"{fmean([s['seconds_eval'] for s in seeds]):.0f} |")
    if results.get("multiplier"):
        lines += ["", "| arm | metric | recordings | N_eq | effective data multiplier |",
                  "| --- | --- | ---: | ---: | --- |"]
        for m in results["multiplier"]:
            n_eq = f"{m['n_eq']:.1f}" if m["n_eq"] is not None else "n/a"
            value = f"{m['bound'] + ' ' if m['bound'] else ''}{m['multiplier']:.2f}x"
            lines.append(f"| {m['arm']} | {m['metric']} | {m['size']} | {n_eq} | {value} |")
    return "\n".join(lines) + "\n"


def write_plot(results: dict, path: str) -> None:
    """Training loss (moving average of 10 steps) and validation exact accuracy against step, one
    colour per arm, the line the mean over seeds and the band their min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, (name, block) in enumerate(results["arms"].items()):
        colour = f"C{index % 10}"
        losses = np.array(block["curves"]["loss"], dtype=float)
        width = min(10, losses.shape[1])
        kernel = np.ones(width) / width
        smooth = np.array([np.convolve(row, kernel, mode="valid") for row in losses])
        steps = np.arange(width, losses.shape[1] + 1)
        left.plot(steps, smooth.mean(0), color=colour, label=name)
        left.fill_between(steps, smooth.min(0), smooth.max(0), color=colour, alpha=0.2)
        exact = np.array(block["curves"]["exact"], dtype=float)
        eval_steps = block["curves"]["eval_steps"]
        right.plot(eval_steps, exact.mean(0), color=colour, marker="o", label=name)
        right.fill_between(eval_steps, exact.min(0), exact.max(0), color=colour, alpha=0.2)
    left.set(xlabel="step", ylabel="training loss (10-step mean)", title="training loss")
    right.set(xlabel="step", ylabel="exact pointer accuracy", title="validation (as stored), band: min..max over seeds")
    right.axhline(results["baselines"]["nearest_neighbour"]["exact"], color="grey", linestyle="--",
                  label="nearest neighbour")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(results: dict, out_dir: str) -> dict[str, str]:
    """Write ``results.json``, ``curves.png`` and ``summary.md`` into ``out_dir``; their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json"), "png": os.path.join(out_dir, "curves.png"),
             "markdown": os.path.join(out_dir, "summary.md")}
    with open(paths["json"], "w") as f:
        json.dump(results, f, indent=1)
    write_plot(results, paths["png"])
    with open(paths["markdown"], "w") as f:
        f.write(render_markdown(results))
    return paths
