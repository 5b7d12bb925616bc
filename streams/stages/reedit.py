"""Re-edit: a new edit of the raw recording per (seed, epoch, key), so every epoch brings new (edit, pointers).

The EDL is drawn by the ``simulate-edits`` rules (:func:`streams.audio.edits.draw_edl`: cuts at arbitrary
samples, drops, repeats, swaps, one crossfade), rendered by the rendering rule
(:func:`streams.audio.edl.render_edit`), and the edit map is the pointer rule's
(:meth:`streams.audio.timeline.EditMap.from_edl`). The sample's previous edit and map are replaced; the
recording is untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..audio.edits import draw_edl, min_edit_seconds
from ..audio.edl import edl_from_json, edl_to_json, render_edit
from ..audio.sample import AudioSample
from ..audio.timeline import EditMap
from ..checks import check_choice, check_float_range, check_probability
from ..pipe import pipe_method
from ..sample import SampleError
from .audio_augment import ON_ERROR_POLICIES, AudioAugmentStage

__all__ = ["ReeditSettings", "ReeditStage", "apply_reedit", "draw_reedit"]


@dataclasses.dataclass(frozen=True)
class ReeditSettings:
    """Settings of :class:`ReeditStage`; each bad value is a ``FieldError`` naming its field.

    Args:
        probability: chance to re-edit a sample, in [0, 1] (1.0: a new edit every epoch).
        piece_seconds: ``[min, max]`` length of the pieces the recording is cut into, seconds, > 0.
        crossfade_seconds: ``[min, max]`` crossfade, seconds, >= 0 (the rules: 5-40 ms).
        on_error: a recording shorter than two pieces of ``piece_seconds[0]`` (``"too_short_for_reedit"``)
            raises (``"raise"``) or keeps its edit and is counted under ``skipped`` (``"skip"``).
    """

    probability: float = 1.0
    piece_seconds: tuple[float, float] = (2.0, 8.0)
    crossfade_seconds: tuple[float, float] = (0.005, 0.040)
    on_error: str = "raise"

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "probability", check_probability(self.probability))
        set_field(self, "piece_seconds",
                  check_float_range(self.piece_seconds, "piece_seconds", minimum=0.0, include_minimum=False))
        set_field(self, "crossfade_seconds",
                  check_float_range(self.crossfade_seconds, "crossfade_seconds", minimum=0.0))
        set_field(self, "on_error", check_choice(self.on_error, "on_error", ON_ERROR_POLICIES))


def draw_reedit(sample: AudioSample, settings: ReeditSettings, generator: np.random.Generator) -> dict[str, Any]:
    """``{"edl": EDL JSON}`` for a new edit of ``sample.raw``; ``SampleError(reason="too_short_for_reedit")``
    naming the key when the recording is shorter than two pieces of the shortest length."""
    seconds = sample.raw_seconds
    shortest = settings.piece_seconds[0]
    if seconds < min_edit_seconds(shortest):
        raise SampleError(f"audio sample {sample.key!r}: the recording lasts {seconds:.3f} s, too short to re-edit in "
                          f"pieces of at least {shortest} s (needs {min_edit_seconds(shortest)} s); lower "
                          "piece_seconds or set on_error to skip", reason="too_short_for_reedit", key=sample.key,
                          url=sample.url)
    low, high = settings.crossfade_seconds
    edl = draw_edl(seconds, generator, min_piece=shortest, max_piece=settings.piece_seconds[1], min_crossfade=low,
                   max_crossfade=high)
    return {"edl": edl_to_json(edl)}


def apply_reedit(sample: AudioSample, params: dict[str, Any]) -> AudioSample:
    """``sample`` with ``edit`` rendered from ``params["edl"]`` and ``edit_map`` its pointer rule.

    ``sample.raw`` ``(n,)`` is read, not changed; the new edit is float32 ``(m,)`` with
    ``m = edl.edit_samples(sample_rate)``.
    """
    edl = edl_from_json(params["edl"], f"re-edit of {sample.key!r}")
    edit = render_edit(sample.raw.numpy(), sample.sample_rate, edl)
    return sample.replace(edit=torch.from_numpy(edit), edit_map=EditMap.from_edl(edl, sample.sample_rate))


@pipe_method("reedit")
class ReeditStage(AudioAugmentStage):
    """Replace each sample's edit with a new one drawn from its recording (see the module docstring).

    ``ReeditStage(ReeditSettings(...))`` or ``ReeditStage(probability=..., piece_seconds=...)``. Params
    recorded: ``{"edl": {"segments": [[start, end], ...], "crossfade": seconds}}``. Pointers: the new
    edit's, by the documented pointer rule (a segment takes over at the midpoint of each crossfade).
    Cost: one copy of the recording's kept parts (``render_edit``), a few milliseconds for minutes.
    """

    name = "reedit"
    settings_class = ReeditSettings
    skip_reasons = ("too_short_for_reedit",)

    def draw(self, sample: AudioSample, generator: np.random.Generator) -> dict[str, Any]:
        return draw_reedit(sample, self.settings, generator)

    def apply(self, sample: AudioSample, params: dict[str, Any]) -> AudioSample:
        return apply_reedit(sample, params)
