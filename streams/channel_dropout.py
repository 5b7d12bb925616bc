"""A4 channel dropout: zero whole mel bands, so the model cannot lean on a few frequencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .checks import check_float
from .pipe import pipe_method
from .schedule import ProbabilitySchedule
from .spectral import SpectralAugmentStage

__all__ = ["ChannelDropoutStage", "drop_channels"]


def drop_channels(mel: torch.Tensor, channels: Sequence[int]) -> torch.Tensor:
    """``mel`` (``(n_mels, frames)``) with the rows ``channels`` set to 0, as a new tensor.

    With no channels it returns ``mel`` itself (nothing to change, nothing copied). Indices
    outside ``[0, n_mels)`` raise ``ValueError``.

    >>> drop_channels(torch.ones(3, 2), [1])
    tensor([[1., 1.],
            [0., 0.],
            [1., 1.]])
    """
    if len(channels) == 0:
        return mel
    index = torch.as_tensor(channels, dtype=torch.int64)
    if int(index.min()) < 0 or int(index.max()) >= mel.shape[0]:
        raise ValueError(f"channels {list(channels)} must lie in [0, {mel.shape[0]}) for a mel with "
                         f"{mel.shape[0]} bins")
    return mel.index_fill(0, index, 0.0)


@pipe_method("channel_dropout")
class ChannelDropoutStage(SpectralAugmentStage):
    """Zero each mel channel independently with probability ``dropout_rate``.

    Args:
        probability: chance to fire per sample (plan: 0.3).
        dropout_rate: chance that a given channel is dropped (plan: 0.1, range 0.05 .. 0.15);
            0 never drops, 1 drops every channel.
        mode: ``"shared"`` (default, as the plan says: the same channels in both mels, so the
            pointer content invariant holds exactly) or ``"independent"`` (each mel its own).
        schedule: optional per-epoch factor on ``probability``.

    Dropped channels are set to 0, as in the plan (on log-mels 0 is a value, not silence).
    Params recorded: ``{"mode": "shared", "channels": [dropped indices]}`` (or per mel under
    ``"raw"``/``"edit"``). Cost: about one copy per mel, none when no channel is dropped.

    >>> from streams.sample import Sample
    >>> s = Sample("a", torch.ones(2, 3), torch.ones(2, 2), torch.tensor([0, 2]))
    >>> out = ChannelDropoutStage(probability=1.0, dropout_rate=1.0).augment(s)
    >>> out.edit_mel.tolist(), out.meta["augmentations"][0]["channels"]
    ([[0.0, 0.0], [0.0, 0.0]], [0, 1])
    """

    name = "channel_dropout"

    def __init__(self, *, probability: float = 0.3, dropout_rate: float = 0.1, mode: str = "shared",
                 schedule: ProbabilitySchedule | None = None):
        super().__init__(probability=probability, mode=mode, schedule=schedule)
        self.dropout_rate = check_float(dropout_rate, "dropout_rate", maximum=1.0)

    def draw_mel(self, mel: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        dropped = torch.rand(mel.shape[0], generator=generator, dtype=torch.float64) < self.dropout_rate
        return {"channels": dropped.nonzero().squeeze(1).tolist()}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any]) -> torch.Tensor:
        return drop_channels(mel, decision["channels"])
