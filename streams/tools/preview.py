"""Pictures of what augmentations do to a sample, for the plan's "visual inspection" step.

:func:`render_preview` draws, for each stage, one PNG: raw and edit mels before and after, and
the pointer map (edit frame vs the raw frame it points to) before and after. It uses
matplotlib's Agg canvas directly, so it needs no display and leaves pyplot's global state alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..stages.augment import AugmentStage
from ..sample import Sample

__all__ = ["render_preview"]


def _show_mel(axes: Axes, mel: torch.Tensor, title: str) -> None:
    values = mel.float().numpy()
    if values.size:
        axes.imshow(values, origin="lower", aspect="auto", interpolation="nearest", cmap="magma")
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


def _file_name(index: int, name: str) -> str:
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


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
        params = stage.draw(sample, stage.keyed_generator(seed, 0, name, sample.key))
        after = sample if params is None else stage.apply(sample, params)  # None: nothing to do here
        figure = Figure(figsize=(12, 9), layout="constrained")
        FigureCanvasAgg(figure)
        grid = figure.subplots(3, 2)
        _show_mel(grid[0, 0], sample.raw_mel, f"raw before ({sample.n_mels} x {sample.raw_frames})")
        _show_mel(grid[0, 1], after.raw_mel, f"raw after ({after.n_mels} x {after.raw_frames})")
        _show_mel(grid[1, 0], sample.edit_mel, f"edit before ({sample.n_mels} x {sample.edit_frames})")
        _show_mel(grid[1, 1], after.edit_mel, f"edit after ({after.n_mels} x {after.edit_frames})")
        _show_pointers(grid[2, 0], sample, "pointers before")
        _show_pointers(grid[2, 1], after, "pointers after")
        summary = json.dumps(params)
        figure.suptitle(f"{name} on {sample.key}: {summary[:160]}{'...' if len(summary) > 160 else ''}", fontsize=10)
        path = out_dir / _file_name(index, name)
        figure.savefig(path, dpi=80)
        paths.append(path)
    return paths
