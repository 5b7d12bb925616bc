"""A small pointer network: the measuring instrument of ``python -m pipelines validate``.

One encoder is shared by the raw and the edit recording (siamese):

1. per-recording, per-band standardisation over the real (unpadded) frames, so a gain or an
   offset on a log-mel changes nothing downstream;
2. a linear layer from ``n_mels`` to ``d``;
3. ``blocks`` residual 1-D conv blocks, dilations 1, 2, 4, 8, ... (cycling): depthwise conv
   (kernel 7), LayerNorm, an MLP twice as wide, added back.

Scores are the scaled dot product ``edit @ raw.T / sqrt(d)``, shape ``(B, T_edit, T_raw)``, with
``-inf`` on padded raw frames, so a padded frame can never be chosen. The loss is
``cross_entropy(scores.transpose(1, 2), pointers, ignore_index=-100)``.

Sizes: ``ModelSize.small()`` (d=96, 4 blocks, about 0.17M parameters, ~3 steps/s at 400 raw
frames and batch 8 on one CPU core) is the default; ``ModelSize.large()`` (d=192, 8 blocks,
about 1.2M parameters) is for GPUs.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from streams.stages.collate import IGNORE_INDEX

__all__ = ["ModelSize", "PointerNet", "pointer_loss", "standardise"]


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Width ``d``, number of conv ``blocks`` and depthwise ``kernel`` size of :class:`PointerNet`."""

    d: int = 96
    blocks: int = 4
    kernel: int = 7

    @classmethod
    def small(cls) -> ModelSize:
        return cls(d=96, blocks=4)

    @classmethod
    def large(cls) -> ModelSize:
        return cls(d=192, blocks=8)

    @classmethod
    def named(cls, name: str) -> ModelSize:
        """``"small"`` or ``"large"``; anything else is a ``ValueError`` naming ``--model``."""
        if name not in ("small", "large"):
            raise ValueError(f"--model must be 'small' or 'large' ({name!r} given)")
        return getattr(cls, name)()


def standardise(mel: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-recording, per-band standardisation over real frames; padded frames come out 0.

    ``mel``: ``(B, n_mels, T)``; ``mask``: ``(B, T)`` bool, true on real frames. Returns
    float32 ``(B, n_mels, T)``. A band that is constant over the recording maps to 0.

    >>> x = torch.tensor([[[1.0, 3.0, 9.0]]])
    >>> standardise(x, torch.tensor([[True, True, False]])).round(decimals=4).tolist()
    [[[-1.0, 1.0, 0.0]]]
    """
    mel = mel.float()
    weight = mask.unsqueeze(1).float()
    count = weight.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (mel * weight).sum(-1, keepdim=True) / count
    centred = (mel - mean) * weight
    std = (centred.square().sum(-1, keepdim=True) / count).sqrt()
    return centred / (std + eps)


class _ConvBlock(nn.Module):
    """``x + MLP(LayerNorm(depthwise_conv(x)))`` on ``(B, T, d)``; padded frames are zeroed first."""

    def __init__(self, d: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(d, d, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = (x * mask.unsqueeze(-1)).transpose(1, 2)
        h = self.conv(h).transpose(1, 2)
        return x + self.mlp(self.norm(h))


class PointerNet(nn.Module):
    """Shared-encoder pointer network (see the module docstring).

    ``forward(raw_mel, raw_mask, edit_mel, edit_mask)`` takes ``(B, n_mels, T_raw)``, ``(B, T_raw)``
    bool, ``(B, n_mels, T_edit)``, ``(B, T_edit)`` bool and returns float32 scores
    ``(B, T_edit, T_raw)``, ``-inf`` where the raw frame is padding.

    >>> net = PointerNet(n_mels=8, size=ModelSize(d=16, blocks=2))
    >>> raw, edit = torch.randn(2, 8, 30), torch.randn(2, 8, 20)
    >>> raw_mask = torch.arange(30) < torch.tensor([[30], [25]])
    >>> net(raw, raw_mask, edit, torch.ones(2, 20, dtype=torch.bool)).shape
    torch.Size([2, 20, 30])
    """

    def __init__(self, n_mels: int, size: ModelSize = ModelSize()):
        super().__init__()
        if n_mels < 1 or size.d < 1 or size.blocks < 0 or size.kernel < 1 or size.kernel % 2 == 0:
            raise ValueError(f"need n_mels >= 1, d >= 1, blocks >= 0 and an odd kernel (got n_mels={n_mels}, {size})")
        self.n_mels = n_mels
        self.size = size
        self.project = nn.Linear(n_mels, size.d)
        self.blocks = nn.ModuleList(_ConvBlock(size.d, size.kernel, 2 ** (i % 4)) for i in range(size.blocks))
        self.out_norm = nn.LayerNorm(size.d)

    def encode(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` mels and ``(B, T)`` mask → ``(B, T, d)`` frame embeddings."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"mel must be (B, {self.n_mels}, T); got {tuple(mel.shape)}")
        x = self.project(standardise(mel, mask).transpose(1, 2))
        for block in self.blocks:
            x = block(x, mask)
        return self.out_norm(x)

    def scores(self, raw: torch.Tensor, raw_mask: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
        """Scores from embeddings: ``(B, T_edit, d)`` edit x ``(B, T_raw, d)`` raw → ``(B, T_edit, T_raw)``."""
        logits = torch.bmm(edit, raw.transpose(1, 2)).float() / math.sqrt(self.size.d)
        return logits.masked_fill(~raw_mask.unsqueeze(1), float("-inf"))

    def forward(self, raw_mel: torch.Tensor, raw_mask: torch.Tensor, edit_mel: torch.Tensor,
                edit_mask: torch.Tensor) -> torch.Tensor:
        return self.scores(self.encode(raw_mel, raw_mask), raw_mask, self.encode(edit_mel, edit_mask))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def pointer_loss(scores: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over real edit frames: ``scores (B, T_edit, T_raw)``, ``pointers (B, T_edit)``
    with :data:`~streams.stages.collate.IGNORE_INDEX` (-100) on padding."""
    return F.cross_entropy(scores.float().transpose(1, 2), pointers, ignore_index=IGNORE_INDEX)
