"""The outputs of a validation: ``results.json``, a PNG of the curves and a markdown summary.

``results.json`` (all metrics are fractions except ``median_abs_err``, in raw frames; METRIC is
one of :data:`METRICS`: the argmax's ``exact``, ``within_2``, ``median_abs_err``,
``argmax_cut_f1``, ``argmax_cut_f1_5`` and the decoded path's ``decoded_exact``,
``decoded_within_2``, ``cut_f1``, ``cut_f1_5``; cut F1 within 2 and 5 edit frames)::

    {"protocol": "quick", "settings": {...}, "seconds": s, "train": URLS, "val": URLS,
     "holdout_recordings": [...], "load_average": [1, 5, 15 min], ...,
     "train_audio": URLS|null, "audio_augmentation": {the audio stages' block}|null,  # protocol audio
     "arms": {NAME: {"recordings": k or null, "against": NAME or null,
                     "per_seed": [{"seed": S, METRIC: x, ..., "conditions": {COND: {METRIC: x}},
                                   "steps": n, "best_step": n, "stopped_by": "plateau"|"cap",
                                   "penalty": p, "baseline_weight": w, "holdout_decoded_exact": x, "learned": {...},
                                   "instability": {...}, "data_wait_fraction": x,
                                   "seconds_train": s, "seconds_holdout": s, "seconds_final": s}, ...],
                     METRIC: {"mean": x, "std": x}, ..., "best_step": {"mean", "std"},
                     "conditions": {COND: {METRIC: {"mean": x, "std": x}}},
                     "curves": {"loss": [[per step] per seed], "holdout": [[[step, decoded_exact], ...] per seed],
                                "holdout_loss": [[[step, loss], ...] per seed] (what the plateau rule scores),
                                "best_step": [per seed], "steps": [per seed]}}},
     "baselines": {"nearest_neighbour": {METRIC: x, ..., "penalty": p, "penalty_grid": [[p, x], ...],
                                         "holdout": {METRIC: x}, "conditions": {COND: {METRIC: x}}}},
     "comparisons": [{"arm": "all", "against": "none", "metric": "decoded_exact", "condition": "stored",
                      "delta_mean": x, "ci95": [lo, hi], "verdict": "helps"|"hurts"|"unresolved",
                      "agree": n, "seeds": n, "deltas": [...]}, ...],
     "against_baseline": [{"arm": NAME, "metric": "decoded_exact", ... as a comparison}, ...],
     "contributions": [{"block": "noise", "arm": "without_noise", "metric": "decoded_exact",  # protocol ablation
                        "condition": "stored", ... as a comparison of all against the arm}, ...],
     "multiplier": [{"arm": "all@k", "metric": "decoded_exact", "size": k, "n_eq": x, "multiplier": x,
                     "bound": null|"more than"|"less than"}, ...],
     "penalty_at_grid_top": ["all seed 1", "nearest neighbour", ...]}   (see :func:`at_grid_top`)

A seed's scores are those of its best checkpoint (by the held-out training recordings), scored
once on the validation set at its chosen penalty. Top-level arm metrics are the ``stored``
condition; COND is each condition scored (``settings.conditions``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from statistics import fmean

from .protocols import Arm, multiplier
from .stats import paired_comparison, summarise

__all__ = ["COMPARED", "METRICS", "at_grid_top", "build_results", "render_markdown", "write_outputs", "write_plot"]

METRICS = ("exact", "within_2", "median_abs_err", "argmax_cut_f1", "argmax_cut_f1_5",
           "decoded_exact", "decoded_within_2", "cut_f1", "cut_f1_5")
COMPARED = ("decoded_exact", "decoded_within_2", "cut_f1", "cut_f1_5", "exact", "within_2")


def _arm_block(arm: Arm, runs: Sequence[dict]) -> dict:
    per_seed = []
    for run in runs:
        conditions = {c: {m: scored[m] for m in METRICS} for c, scored in run["final"].items()}
        per_seed.append({"seed": run["seed"], **conditions["stored"], "conditions": conditions,
                         "steps": run["steps"], "best_step": run["best_step"], "stopped_by": run["stopped_by"],
                         "penalty": run["penalty"], "baseline_weight": run["baseline_weight"],
                         "holdout_decoded_exact": run["holdout_best"]["decoded_exact"],
                         "learned": run["learned"], "instability": run["instability"],
                         "data_wait_fraction": run["data_wait_fraction"], "seconds_train": run["seconds_train"],
                         "seconds_holdout": run["seconds_holdout"], "seconds_final": run["seconds_final"],
                         "epochs": run["epochs"], "parameters": run["parameters"]})
    names = list(per_seed[0]["conditions"])
    return {"recordings": len(arm.recordings) if arm.recordings else None, "against": arm.against,
            "per_seed": per_seed, **{m: summarise([s[m] for s in per_seed]) for m in METRICS},
            "best_step": summarise([s["best_step"] for s in per_seed]),
            "conditions": {c: {m: summarise([s["conditions"][c][m] for s in per_seed]) for m in METRICS}
                           for c in names},
            "curves": {"loss": [run["loss"] for run in runs],
                       "holdout": [[[e["step"], e["holdout"]["decoded_exact"]] for e in run["curve"]] for run in runs],
                       "holdout_loss": [[[e["step"], e["holdout"]["loss"]] for e in run["curve"]] for run in runs],
                       "best_step": [run["best_step"] for run in runs], "steps": [run["steps"] for run in runs]}}


def build_results(protocol: str, arms: Sequence[Arm], runs: Sequence[dict], baseline: dict,
                  **context) -> dict:
    """The results document (see the module docstring) from the runs of every arm and seed and
    the baseline (:func:`.run.run_baseline`)."""
    by_arm = {arm.name: [r for r in runs if r["arm"] == arm.name] for arm in arms}
    blocks = {arm.name: _arm_block(arm, by_arm[arm.name]) for arm in arms}
    comparisons = [{"arm": arm.name, "against": arm.against, **c}
                   for arm in arms if arm.against is not None for c in _paired(blocks, arm.name, arm.against)]
    against_baseline = []
    for name, block in blocks.items():
        for metric in ("decoded_exact", "exact"):
            values = [s[metric] for s in block["per_seed"]]
            against_baseline.append({"arm": name, "against": "nearest_neighbour", "metric": metric,
                                     "condition": "stored",
                                     **paired_comparison(values, [baseline[metric]] * len(values), metric)})
    results = {"protocol": protocol, **context, "arms": blocks, "baselines": {"nearest_neighbour": baseline},
               "comparisons": comparisons, "against_baseline": against_baseline}
    if any(arm.leaves_out for arm in arms):
        results["contributions"] = _contributions(arms, blocks)
    if protocol == "multiplier":
        results["multiplier"] = _multipliers(arms, blocks)
    results["penalty_at_grid_top"] = at_grid_top(results)
    return results


def _contributions(arms: Sequence[Arm], blocks: dict[str, dict]) -> list[dict]:
    """What each block adds: ``all`` minus the arm that leaves it out, paired by seed, for every
    compared metric and condition (``helps``: removing the block lowers the score)."""
    if "all" not in blocks:
        raise ValueError("an ablation needs the arm 'all' to measure what each block adds")
    return [{"block": arm.leaves_out, "arm": arm.name, **c}
            for arm in arms if arm.leaves_out for c in _paired(blocks, "all", arm.name)]


def _paired(blocks: dict[str, dict], ours: str, theirs: str) -> list[dict]:
    """Arm ``ours`` minus arm ``theirs``, paired by seed, for every compared metric and condition."""
    mine, other = blocks[ours]["per_seed"], blocks[theirs]["per_seed"]
    if [s["seed"] for s in mine] != [s["seed"] for s in other]:
        raise ValueError(f"arms {ours!r} and {theirs!r} ran different seeds; cannot pair them")
    return [{"metric": metric, "condition": condition,
             **paired_comparison([s["conditions"][condition][metric] for s in mine],
                                 [s["conditions"][condition][metric] for s in other], metric)}
            for condition in mine[0]["conditions"] for metric in COMPARED]


def at_grid_top(results: dict) -> list[str]:
    """The runs (``"all seed 1"``) and baseline whose jump penalty is the largest of a grid of several:
    their best penalty may lie beyond it. A model trained longer grows sharper log-probabilities and
    may want a larger one (at a 400-step cap every ``all`` run chose 256, the default grid's top; a
    grid up to 4096 chose 256 again for seed 0): a prompt to look, not a verdict."""
    grid = (results.get("settings") or {}).get("penalties") or ()
    if len(grid) < 2:
        return []
    top = max(grid)
    found = [f"{name} seed {s['seed']}" for name, block in results["arms"].items() for s in block["per_seed"]
             if s["penalty"] == top]
    return found + (["nearest neighbour"] if results["baselines"]["nearest_neighbour"]["penalty"] == top else [])


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


def _ci(c: dict) -> str:
    return f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "n/a"


def render_markdown(results: dict) -> str:
    """The summary tables: scores per arm (argmax and decoded), comparisons with the reference arm
    and with the nearest neighbour, instability and timings, multiplier."""
    nn = results["baselines"]["nearest_neighbour"]
    others = [c for c in nn["conditions"] if c != "stored"]
    lines = [f"### Protocol `{results['protocol']}`", "",
             "Whole validation recordings unless `eval_frames` is set; a seed's scores are its best checkpoint "
             "(held-out training recordings) at the penalty and baseline weight (the nearest neighbour's scores added "
             "for decoding, times w) chosen there.", "",
             "| arm | best step / stopped | penalty / w | exact | within 2 | argmax cut F1 | decoded exact | "
             "decoded within 2 | cut F1 (2) | cut F1 (5) |" + "".join(f" decoded exact, {c} |" for c in others),
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(others)]
    for name, block in results["arms"].items():
        seeds = block["per_seed"]
        steps = ", ".join(f"{s['best_step']}/{s['steps']}" for s in seeds)
        penalties = ", ".join(f"{s['penalty']:g}/{s['baseline_weight']:g}" for s in seeds)
        lines.append(f"| {name} | {steps} | {penalties} | {_pm(block['exact'])} | {_pm(block['within_2'])} | "
                     f"{_pm(block['argmax_cut_f1'])} | {_pm(block['decoded_exact'])} | "
                     f"{_pm(block['decoded_within_2'])} | {_pm(block['cut_f1'])} | {_pm(block['cut_f1_5'])} |"
                     + "".join(f" {_pm(block['conditions'][c]['decoded_exact'])} |" for c in others))
    lines.append(f"| nearest neighbour (no training) | | {nn['penalty']:g} | {nn['exact']:.3f} | "
                 f"{nn['within_2']:.3f} | {nn['argmax_cut_f1']:.3f} | {nn['decoded_exact']:.3f} | "
                 f"{nn['decoded_within_2']:.3f} | {nn['cut_f1']:.3f} | {nn['cut_f1_5']:.3f} |"
                 + "".join(f" {nn['conditions'][c]['decoded_exact']:.3f} |" for c in others))
    if results.get("penalty_at_grid_top"):
        lines += ["", f"Penalty at the top of the grid ({max(results['settings']['penalties']):g}) for "
                  f"{', '.join(results['penalty_at_grid_top'])}: the best one may lie beyond it; run again "
                  f"with `--penalties` reaching higher before reading their decoded scores."]
    lines += ["", "| arm | against | metric | condition | delta (mean) | 95% CI | verdict | seeds agreeing |",
              "| --- | --- | --- | --- | ---: | --- | --- | ---: |"]
    shown = [c for c in results["comparisons"]
             if (c["condition"] == "stored" and c["metric"] in ("decoded_exact", "exact", "cut_f1"))
             or c["metric"] == "decoded_exact"]
    for c in shown + [c for c in results["against_baseline"] if c["metric"] == "decoded_exact"]:
        lines.append(f"| {c['arm']} | {c['against']} | {c['metric']} | {c['condition']} | {c['delta_mean']:+.3f} | "
                     f"{_ci(c)} | {c['verdict']} | {c['agree']}/{c['seeds']} |")
    lines += ["", ("| arm | non-finite | grad-norm spikes | loss spikes | gap growing | held-out - train loss (last) | "
                   "data wait | train s | held-out s | final s |"),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, block in results["arms"].items():
        seeds = block["per_seed"]
        inst = [s["instability"] for s in seeds]
        nonfinite = sum(i["nonfinite_loss"] + i["nonfinite_grad"] for i in inst)
        lines.append(f"| {name} | {nonfinite} | {sum(i['grad_norm_spikes'] for i in inst)} | "
                     f"{sum(i['loss_spikes'] for i in inst)} | {sum(i['gap_growing'] for i in inst)}/{len(inst)} | "
                     f"{fmean([i['gap_last'] for i in inst]):+.2f} | "
                     f"{fmean([s['data_wait_fraction'] for s in seeds]):.1%} | "
                     f"{fmean([s['seconds_train'] for s in seeds]):.0f} | "
                     f"{fmean([s['seconds_holdout'] for s in seeds]):.0f} | "
                     f"{fmean([s['seconds_final'] for s in seeds]):.0f} |")
    if results.get("contributions"):
        lines += ["", "What each block adds (`all` minus `all` without it, paired by seed; stored recordings):", "",
                  "| block | metric | without it | adds | 95% CI | verdict | seeds agreeing |",
                  "| --- | --- | ---: | ---: | --- | --- | ---: |"]
        for c in results["contributions"]:
            if c["condition"] == "stored" and c["metric"] in ("decoded_exact", "exact"):
                without = results["arms"][c["arm"]][c["metric"]]
                lines.append(f"| {c['block']} | {c['metric']} | {_pm(without)} | {c['delta_mean']:+.3f} | {_ci(c)} | "
                             f"{c['verdict']} | {c['agree']}/{c['seeds']} |")
    if results.get("multiplier"):
        lines += ["", "| arm | metric | recordings | N_eq | effective data multiplier |",
                  "| --- | --- | ---: | ---: | --- |"]
        for m in results["multiplier"]:
            n_eq = f"{m['n_eq']:.1f}" if m["n_eq"] is not None else "n/a"
            value = f"{m['bound'] + ' ' if m['bound'] else ''}{m['multiplier']:.2f}x"
            lines.append(f"| {m['arm']} | {m['metric']} | {m['size']} | {n_eq} | {value} |")
    load = results.get("load_average")
    lines += ["", f"{results['runs_trained']} runs trained, {results['runs_from_cache']} from the cache, "
              f"{results['seconds']:.0f} s wall" + (f", load average at the end {load[0]:.1f} / {load[1]:.1f} / "
                                                    f"{load[2]:.1f}" if load else "") + "."]
    return "\n".join(lines) + "\n"


def write_plot(results: dict, path: str) -> None:
    """Training loss (moving average of 10 steps) with the held-out loss the plateau rule scores
    (dashed), and held-out decoded exact accuracy, against step; one colour per arm, one line per
    seed; a star marks each seed's kept checkpoint, the line's end where the rule (or the cap)
    stopped it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, (name, block) in enumerate(results["arms"].items()):
        colour = f"C{index % 10}"
        curves = block["curves"]
        held_losses = curves.get("holdout_loss") or [None] * len(curves["loss"])
        for seed, (loss, holdout, held_loss, best) in enumerate(zip(curves["loss"], curves["holdout"], held_losses,
                                                                    curves["best_step"])):
            label = name if seed == 0 else None
            loss = np.asarray(loss, dtype=float)
            width = min(10, len(loss))
            smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
            left.plot(np.arange(width, len(loss) + 1), smooth, color=colour, alpha=0.7, label=label)
            if held_loss:
                held_steps, held_values = zip(*held_loss)
                left.plot(held_steps, held_values, color=colour, linestyle="--", marker=".", alpha=0.7)
                if best in dict(held_loss):
                    left.plot([best], [dict(held_loss)[best]], color=colour, marker="*", markersize=12)
            steps, values = zip(*holdout)
            right.plot(steps, values, color=colour, marker=".", alpha=0.7, label=label)
            right.plot([best], [dict(holdout)[best]] if best in dict(holdout) else [values[-1]], color=colour,
                       marker="*", markersize=12)
    left.set(xlabel="step", ylabel="loss (nats)", title="training loss (10-step mean); held-out loss (dashed)")
    right.set(xlabel="step", ylabel="decoded exact (its best penalty)",
              title="held-out training recordings (star: kept checkpoint)")
    right.axhline(results["baselines"]["nearest_neighbour"]["holdout"]["decoded_exact"], color="grey",
                  linestyle="--", label="nearest neighbour (its penalty)")
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
