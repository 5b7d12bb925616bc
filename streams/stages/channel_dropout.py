"""A4 channel dropout: zero whole mel bands, so the model cannot lean on a few frequencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..checks import check_float
from ..sample import Sample
from .registry import register_stage
from .spectral import SpectralAugmentStage, SpectralSettings

__all__ = ["ChannelDropoutSettings", "ChannelDropoutStage", "drop_channels"]


def drop_channels(mel: torch.Tensor, channels: Sequence[int], *, in_place: bool = False) -> torch.Tensor:
    """``mel`` (``(n_mels, frames)``) with the rows ``channels`` set to 0, as a new tensor (or in
    ``mel`` itself with ``in_place``).

    With no channels it returns ``mel`` itself (nothing to change, nothing copied). Indices
    outside ``[0, n_mels)`` raise ``ValueError``.

    >>> drop_channels(torch.ones(3, 2), [1])
    tensor([[1., 1.],
            [0., 0.],
            [1., 1.]])
    """
    index = _channel_index(channels, mel.shape[0])
    if index is None:
        return mel
    return mel.index_fill_(0, index, 0.0) if in_place else mel.index_fill(0, index, 0.0)


def _channel_index(channels: Sequence[int], n_mels: int) -> torch.Tensor | None:
    """``channels`` as an int64 index tensor after checking the range; ``None`` when empty."""
    channels = [int(channel) for channel in channels]
    if not channels:
        return None
    if min(channels) < 0 or max(channels) >= n_mels:
        raise ValueError(f"channels {channels} must lie in [0, {n_mels}) for a mel with {n_mels} bins")
    return torch.tensor(channels, dtype=torch.int64)


class ChannelDropoutSettings(SpectralSettings):
    """The ``channel_dropout`` block (A4), ``probability`` as in the plan; fields: :class:`ChannelDropoutStage`."""

    probability: float = 0.3
    dropout_rate: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float(self.dropout_rate, "dropout_rate", maximum=1.0)


@register_stage("channel_dropout", ChannelDropoutSettings)
class ChannelDropoutStage(SpectralAugmentStage):
    """Zero each mel channel independently with probability ``dropout_rate``.

    Args:
        dropout_rate: chance that a given channel is dropped (plan: 0.1, range 0.05 .. 0.15);
            0 never drops, 1 drops every channel.
        mode: ``"shared"`` (default, as the plan says: the same channels in both mels, so the
            pointer content invariant holds exactly) or ``"independent"`` (each mel its own).

    Dropped channels are set to 0, as in the plan (on log-mels 0 is a value, not silence).
    Params recorded: ``{"mode": "shared", "channels": [dropped indices]}`` (or per mel under
    ``"raw"``/``"edit"``). Cost: about one copy per mel, none when no channel is dropped.

    Examples:
        >>> from streams.stages.channel_dropout import ChannelDropoutStage
        >>> from streams.sample import Sample
        >>> s = Sample("a", torch.ones(2, 3), torch.ones(2, 2), torch.tensor([0, 2]))
        >>> out = ChannelDropoutStage(probability=1.0, dropout_rate=1.0).augment(s)
        >>> out.edit_mel.tolist(), out.meta["augmentations"][0]["channels"]
        ([[0.0, 0.0], [0.0, 0.0]], [0, 1])
    """

    name = "channel_dropout"

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        dropped = generator.random(mel.shape[0]) < self.dropout_rate
        return {"channels": np.flatnonzero(dropped).tolist()}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any], in_place: bool = False) -> torch.Tensor:
        return drop_channels(mel, decision["channels"], in_place=in_place)

    def apply_shared(self, sample: Sample, decision: dict[str, Any], in_place: bool = False) -> Sample:
        index = _channel_index(decision["channels"], sample.n_mels)  # checked and built once for both mels
        if index is None:
            return sample
        fill = torch.Tensor.index_fill_ if in_place else torch.Tensor.index_fill
        return sample.replace(raw_mel=fill(sample.raw_mel, 0, index, 0.0),
                              edit_mel=fill(sample.edit_mel, 0, index, 0.0))
