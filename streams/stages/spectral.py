"""The shared shell of spectral augmentations (noise, SpecAugment, gain, channel dropout).

A spectral augmentation changes mel values, never frame counts or pointers. It runs in one of
two modes:

* ``"shared"``: one decision, drawn on ``raw_mel``, applies to both mels. Frequency-side choices
  (bands, dropped channels, gain) are identical; time-side choices follow the pointers: edit
  frame ``i`` gets exactly what raw frame ``pointers[i]`` got (its mask, its noise values). So
  where an edit frame was a copy of its raw frame, it still is: the pointer content invariant
  (:func:`streams.tools.invariants.pointer_content_error` == 0) survives the augmentation.
* ``"independent"``: raw and edit get decisions of their own, each drawn on its own mel, as if
  they were recorded under different conditions.

Subclasses define ``draw_mel(mel, generator) -> decision`` (JSON-friendly dict; ``generator`` is
the sample's numpy ``Generator``, :func:`streams.seeding.sample_rng`), ``apply_mel(mel,
decision, in_place=False) -> mel`` and, when a decision has a time side, ``apply_shared(sample,
decision, in_place=False)``.

In place: in a pipe, when a spectral stage receives the sample the spectral stage just before it
made (tensors it allocated, held by nobody else), it writes into those tensors instead of
allocating new ones (``in_place=True``; see :class:`streams.stages.augment.AugmentStage`). So
the spectral stages that fire on a sample write each mel once into one new tensor, whatever
their number. Each in-place operation is the out-of-place one with ``out=`` the input (same
kernel, same order of operations), so the values are bit-identical either way.
The params recorded are ``{"mode": "shared", **decision}`` or ``{"mode": "independent", "raw":
decision, "edit": decision}``; ``apply`` follows the mode in the params, so a record replays the
same way whatever the stage's own mode.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ..checks import check_choice
from ..sample import Sample
from ..seeding import sample_rng
from .augment import AugmentStage
from .registry import StageSettings

__all__ = ["MODES", "SpectralAugmentStage", "SpectralSettings", "gather_frames"]

MODES = ("shared", "independent")


class SpectralSettings(StageSettings):
    """Base of spectral settings: ``mode``, ``"shared"`` or ``"independent"`` (the module docstring)."""

    mode: Literal["shared", "independent"] = "shared"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.mode, "mode", MODES)


def gather_frames(values: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
    """``values[:, pointers]`` as a new contiguous ``(rows, T_edit)`` tensor, exact copies.

    ``values`` is ``(rows, T_raw)``, ``pointers`` ``(T_edit,)`` int64 in ``[0, T_raw)``. Uses
    ``torch.gather`` with a broadcast (not materialised) index: on run-structured pointers, as real
    edits have, it costs about two plain copies of the output.

    >>> gather_frames(torch.tensor([[0., 1., 2.], [3., 4., 5.]]), torch.tensor([2, 2, 0]))
    tensor([[2., 2., 0.],
            [5., 5., 3.]])
    """
    return torch.gather(values, 1, pointers.unsqueeze(0).expand(values.shape[0], -1))


class SpectralAugmentStage(AugmentStage):
    """Base of spectral stages: the mode switch between shared and independent decisions.

    Its settings (a :class:`SpectralSettings`) hold ``probability`` and ``mode`` (module docstring).

    Shapes and dtypes are kept (float16 mels stay float16); pointers are never touched. Any
    shape works, including one frame, one mel bin and an empty edit (``T_edit == 0``, which
    sources reject but the functions accept).
    """

    keyed_generator = staticmethod(sample_rng)
    settings_class: ClassVar[type[SpectralSettings]] = SpectralSettings

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        """The decision for one ``(n_mels, frames)`` mel (the raw one, in shared mode)."""
        raise TypeError(f"{type(self).__name__} must define draw_mel()")

    supports_in_place = True

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any], in_place: bool = False) -> torch.Tensor:
        """``mel`` with ``decision`` applied, as a new tensor of the same shape and dtype (``mel`` itself,
        written over, when ``in_place``; ``mel`` itself too when the decision changes nothing)."""
        raise TypeError(f"{type(self).__name__} must define apply_mel()")

    def apply_shared(self, sample: Sample, decision: dict[str, Any], in_place: bool = False) -> Sample:
        """Apply one raw-drawn decision to both mels. Right as is for frequency-only decisions;
        stages whose decision has a time side override it to follow the pointers."""
        return sample.replace(raw_mel=self.apply_mel(sample.raw_mel, decision, in_place),
                              edit_mel=self.apply_mel(sample.edit_mel, decision, in_place))

    def draw(self, sample: Sample, generator: np.random.Generator) -> dict[str, Any]:
        if self.mode == "shared":
            return {"mode": "shared", **self.draw_mel(sample.raw_mel, generator)}
        return {"mode": "independent", "raw": self.draw_mel(sample.raw_mel, generator),
                "edit": self.draw_mel(sample.edit_mel, generator)}

    def apply(self, sample: Sample, params: dict[str, Any], in_place: bool = False) -> Sample:
        mode = params.get("mode")
        if mode == "shared":
            return self.apply_shared(sample, {k: v for k, v in params.items() if k != "mode"}, in_place)
        if mode == "independent":
            return sample.replace(raw_mel=self.apply_mel(sample.raw_mel, params["raw"], in_place),
                                  edit_mel=self.apply_mel(sample.edit_mel, params["edit"], in_place))
        raise ValueError(f"{type(self).__name__} params must have mode 'shared' or 'independent' ({mode!r} given)")
