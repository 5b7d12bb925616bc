"""Pictures of what augmentations do to a sample, for the plan's "visual inspection" step.

:func:`render_preview` draws, for each stage, one PNG: raw and edit mels before and after, and
the pointer map (edit frame vs the raw frame it points to) before and after;
:func:`render_overview` draws one PNG with every stage on the same sample, a row per stage. Mels
"after" share the color range of the sample before, so a change shows as a change of color.
Parameters in titles are shortened (:func:`describe_params`) and wrapped to the figure's width.
It uses matplotlib's Agg canvas directly, so it needs no display and leaves pyplot's global state
alone.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..sample import Sample
from ..stages.augment import AugmentStage

__all__ = ["describe_params", "render_before_after", "render_overview", "render_preview", "stage_png"]


def _short(value: Any, max_items: int) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v, max_items)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_short(v, max_items) for v in value[:max_items])
        return f"[{shown}, ... {len(value)} values]" if len(value) > max_items else f"[{shown}]"
    return str(value)


def describe_params(params: dict[str, Any] | None, *, width: int = 120, max_lines: int = 3,
                    max_items: int = 6) -> list[str]:
    """``params`` as at most ``max_lines`` lines of at most ``width`` characters: floats to 4
    significant digits, lists past ``max_items`` values shortened, the last line ending in ``...``
    when the rest does not fit.

    >>> describe_params({"level": 0.14151074527765117, "order": list(range(20))}, width=40)
    ['level: 0.1415, order: [0, 1, 2, 3, 4, 5,', '... 20 values]']
    >>> describe_params(None)
    ['nothing to do on this sample']
    """
    if params is None:
        return ["nothing to do on this sample"]
    text = ", ".join(f"{key}: {_short(value, max_items)}" for key, value in params.items())
    lines = textwrap.wrap(text, width=width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:width - 4] + " ..."
    return lines


def _show_mel(axes: Axes, mel: torch.Tensor, title: str, limits: tuple[float, float] | None = None) -> None:
    values = mel.float().numpy()
    if values.size:
        vmin, vmax = limits if limits is not None else (None, None)
        axes.imshow(values, origin="lower", aspect="auto", interpolation="nearest", cmap="magma", vmin=vmin, vmax=vmax)
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("frame")
    axes.set_ylabel("mel bin")


def _show_pointers(axes: Axes, sample: Sample, title: str) -> None:
    axes.scatter(torch.arange(sample.edit_frames).numpy(), sample.pointers.numpy(), s=2, linewidths=0)
    axes.set_xlim(-0.5, max(sample.edit_frames, 1) - 0.5)
    axes.set_ylim(-0.5, max(sample.raw_frames, 1) - 0.5)
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("edit frame")
    axes.set_ylabel("raw frame")


def _limits(mel: torch.Tensor) -> tuple[float, float] | None:
    if mel.numel() == 0:
        return None
    low, high = torch.aminmax(mel.float())
    return float(low), float(high)


def _draw(sample: Sample, stage: AugmentStage, name: str, seed: int) -> tuple[dict[str, Any] | None, Sample]:
    """The stage forced to fire on ``sample`` with the pipe's generator for (seed, epoch 0, name, key)."""
    params = stage.draw(sample, stage.keyed_generator(seed, 0, name, sample.key))
    return params, (sample if params is None else stage.apply(sample, params))  # None: nothing to do here


def render_preview(sample: Sample, stages: Sequence[tuple[str, AugmentStage]], out_dir: str | Path,
                   seed: int = 0) -> list[Path]:
    """Write one PNG per ``(name, stage)`` into ``out_dir`` (created if needed); return their paths.

    Each stage is forced to fire (its probability is ignored) with the generator the pipe would
    use for ``(seed, epoch 0, name, sample.key)``, on the original ``sample``, not on the previous
    stage's output. The figure title shows the recorded params. Files are named
    ``NN_<name>.png`` in stage order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (name, stage) in enumerate(stages):
        params, after = _draw(sample, stage, name, seed)
        title = [f"{name} on {sample.key}", *describe_params(params, width=125)]
        paths.append(render_before_after(sample, after, title, stage_png(out_dir, index, name)))
    return paths


def stage_png(out_dir: Path, index: int, name: str) -> Path:
    """``out_dir / "NN_<name>.png"``, the name made safe for a file name."""
    return out_dir / f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


def render_before_after(sample: Sample, after: Sample, title: Sequence[str], path: Path, dpi: int = 80) -> Path:
    """One PNG at ``path``: raw and edit mels of ``sample`` and ``after`` (after in the colours of before),
    and both pointer maps; ``title`` lines on top."""
    figure = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(3, 2)
    for row, (part, mel, mel_after) in enumerate((("raw", sample.raw_mel, after.raw_mel),
                                                   ("edit", sample.edit_mel, after.edit_mel))):
        _show_mel(grid[row, 0], mel, f"{part} before ({sample.n_mels} x {mel.shape[1]})")
        _show_mel(grid[row, 1], mel_after, f"{part} after ({after.n_mels} x {mel_after.shape[1]})", _limits(mel))
    _show_pointers(grid[2, 0], sample, "pointers before")
    _show_pointers(grid[2, 1], after, "pointers after")
    figure.suptitle("\n".join(title), fontsize=10)
    figure.savefig(path, dpi=dpi)
    return path


def render_overview(sample: Sample, stages: Sequence[tuple[str, AugmentStage]], path: str | Path,
                    seed: int = 0) -> Path:
    """Write one PNG at ``path``: a row for ``sample`` as it is, then a row per stage (raw mel, edit mel,
    pointers), each stage forced to fire on the original sample as in :func:`render_preview`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [("original", None, sample)] + [(name, *_draw(sample, stage, name, seed)) for name, stage in stages]
    figure = Figure(figsize=(14, 2.6 * len(rows)), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(rows), 3, squeeze=False)
    raw_limits, edit_limits = _limits(sample.raw_mel), _limits(sample.edit_mel)
    for axes, (name, params, after) in zip(grid, rows):
        label = name if name == "original" else f"{name}: {describe_params(params, width=48, max_lines=1)[0]}"
        _show_mel(axes[0], after.raw_mel, f"{label}\nraw ({after.n_mels} x {after.raw_frames})", raw_limits)
        _show_mel(axes[1], after.edit_mel, f"edit ({after.n_mels} x {after.edit_frames})", edit_limits)
        _show_pointers(axes[2], after, "pointers")
    figure.suptitle(f"{len(stages)} augmentation(s) on {sample.key}, each forced to fire on the original",
                    fontsize=11)
    figure.savefig(path, dpi=72)
    return path
