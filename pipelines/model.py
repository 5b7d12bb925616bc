"""A pointer network built on the parameter-free baseline: the measuring instrument of ``validate``.

One encoder is shared by the raw and the edit recording (siamese):

1. per-recording, per-band standardisation over the real (unpadded) frames, so a gain or an
   offset on a log-mel changes nothing downstream;
2. a linear layer from ``n_mels`` to ``d``;
3. ``blocks`` residual 1-D conv blocks, dilations 1, 2, 4, ..., 32 (cycling; 6 blocks see 379
   frames): depthwise conv (kernel 7), LayerNorm, an MLP twice as wide, added back.

A frame's *features* are its standardised mel scaled to unit length (what the nearest-neighbour
baseline compares) next to its embedding. The score of edit frame i against raw frame p is

    s[i, p] = a * cos(mel_i, mel_p) + b * <emb_i, emb_p> / sqrt(d)

with learned scalars ``a`` (initialised to ``1 / COSINE_TEMPERATURE``, the baseline's scale) and
``b`` (initialised to 0), then smoothed along the diagonal by ``2K + 1`` learned taps
``w`` (edit i+1 usually points at raw p+1; initialised to the identity):

    S[i, p] = sum_k w[k] * s[i + k, p + k],   k = -K..K, terms off the map count 0.

So the untrained model scores exactly as the baseline does, and training can only add to it. The
smoothing is written as shifted adds (a ``conv2d`` along the diagonal is several times slower on a
CPU). Scores are ``(B, T_edit, T_raw)`` with ``-inf`` on padded raw frames; the loss is
``cross_entropy(scores.transpose(1, 2), pointers, ignore_index=-100)`` on the smoothed scores.
Whole recordings are scored in chunks of edit rows by :meth:`PointerNet.score_rows` (with a halo
of K rows, so chunked and unchunked scores agree).

Sizes (:data:`SIZES`): ``small`` (d=32, 6 blocks, about 31,000 parameters) is the CPU size, some
1.4 s a training step on one core (4 windows of 200 edit frames against 18,000-frame raw
recordings; the raw encoder is most of it); ``medium`` (d=64, about 0.11M parameters, 2.4 s a step)
was the CPU size until 7 December 2026 and learns no faster per step; ``large`` (d=192, 12
blocks, diagonal K=4, about 1.9M parameters) is for ``--device cuda`` runs.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from streams.stages.collate import IGNORE_INDEX

__all__ = ["COSINE_TEMPERATURE", "SIZES", "ModelSize", "PointerNet", "diagonal_smooth", "pointer_loss", "standardise",
           "unit_frames"]

COSINE_TEMPERATURE = 0.1
"""The baseline's cosine similarities become log-probabilities as ``cosine / COSINE_TEMPERATURE``
(a fixed choice, not fitted); the model's cosine scale starts there."""

SIZES = ("small", "medium", "large")
"""The named sizes of ``--model``, smallest first."""


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Width ``d``, number of conv ``blocks``, depthwise ``kernel`` size and the half-width
    ``diagonal`` (K) of the diagonal smoothing of :class:`PointerNet`."""

    d: int = 32
    blocks: int = 6
    kernel: int = 7
    diagonal: int = 2

    @classmethod
    def small(cls) -> ModelSize:
        return cls(d=32, blocks=6, diagonal=2)

    @classmethod
    def medium(cls) -> ModelSize:
        return cls(d=64, blocks=6, diagonal=2)

    @classmethod
    def large(cls) -> ModelSize:
        return cls(d=192, blocks=12, diagonal=4)

    @classmethod
    def named(cls, name: str) -> ModelSize:
        """One of :data:`SIZES`; anything else is a ``ValueError`` naming ``--model``."""
        if name not in SIZES:
            raise ValueError(f"--model must be one of {', '.join(SIZES)} ({name!r} given)")
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


def unit_frames(mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`standardise`, then every frame scaled to unit length: ``(B, n_mels, T)`` →
    ``(B, T, n_mels)``; padded frames (and frames with no variation left) are 0.

    >>> unit_frames(torch.randn(1, 4, 6), torch.ones(1, 6, dtype=torch.bool)).norm(dim=-1).round().tolist()
    [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    """
    return F.normalize(standardise(mel, mask).transpose(1, 2), dim=-1)


def _shifted_add(out: torch.Tensor, scores: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """``out += sum_k taps[K + k] * scores[:, i + k, p + k]`` in place, ``k = -K..K``, ``k != 0``."""
    half = (len(taps) - 1) // 2
    for k in range(1, half + 1):
        out[:, :-k, :-k].add_(scores[:, k:, k:], alpha=taps[half + k])
        out[:, k:, k:].add_(scores[:, :-k, :-k], alpha=taps[half - k])
    return out


class _DiagonalSmooth(torch.autograd.Function):
    """:func:`diagonal_smooth` with its gradient written out: the smoothing is linear, so the
    gradient of the map is the map of the gradient smoothed by the reversed taps, and that of tap
    ``k`` the sum of the gradient times the map shifted by ``k``. Autograd through the shifted
    slices instead allocated and filled a full-size map per slice: 2.2 s of a 4.5 s training step
    on one core (4 x 200 edit x 18,000 raw frames)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        taps = weights.tolist()  # once: a device sync on a GPU
        ctx.save_for_backward(scores, weights)
        ctx.taps = taps
        return _shifted_add(scores * taps[len(taps) // 2], scores, taps)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        scores, weights = ctx.saved_tensors
        taps = ctx.taps
        half = len(taps) // 2
        grad_scores = grad_weights = None
        if ctx.needs_input_grad[0]:
            flipped = taps[::-1]
            grad_scores = _shifted_add(grad * flipped[half], grad, flipped)
        if ctx.needs_input_grad[1]:
            sums = [0.0] * len(taps)
            sums[half] = torch.sum(grad * scores)
            for k in range(1, half + 1):
                sums[half + k] = torch.sum(grad[:, :-k, :-k] * scores[:, k:, k:])
                sums[half - k] = torch.sum(grad[:, k:, k:] * scores[:, :-k, :-k])
            grad_weights = torch.stack(sums).to(weights.dtype)
        return grad_scores, grad_weights


def diagonal_smooth(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``out[b, i, p] = sum_k weights[K + k] * scores[b, i + k, p + k]`` for ``k = -K..K``, where
    ``weights`` has ``2K + 1`` taps; terms that fall off the map count 0. ``scores``: ``(B, T_edit,
    T_raw)``, finite. Shifted adds, differentiable in both arguments.

    >>> s = torch.eye(4).unsqueeze(0)
    >>> diagonal_smooth(s, torch.tensor([1.0, 1.0, 1.0]))[0, 1].tolist()
    [0.0, 3.0, 0.0, 0.0]
    """
    if weights.dim() != 1 or weights.shape[0] % 2 == 0:
        raise ValueError(f"weights must be 2K + 1 taps, an odd 1-D tensor (got shape {tuple(weights.shape)})")
    return _DiagonalSmooth.apply(scores, weights)


class _ConvBlock(nn.Module):
    """``x + MLP(LayerNorm(depthwise_conv(x)))`` on ``(B, T, d)``; padded frames are zeroed first.

    Up to dilation 8 the conv runs as a ``(1, kernel)`` 2-D conv on a ``(B, d, 1, T)`` view of the
    ``(B, T, d)`` frames, which is channels-last in memory: no transposed copy either side, and
    about half the time of ``Conv1d`` (forward and backward, 4 x 18,000 frames, d=32, one core);
    from dilation 16 that path is 1.5x slower than ``Conv1d``, which those blocks keep. The weights
    are the ``Conv1d``'s either way, so checkpoints are unchanged."""

    def __init__(self, d: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(d, d, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        h = (x * mask.unsqueeze(-1)).transpose(1, 2)
        if conv.dilation[0] <= 8:  # (B, d, 1, T): channels-last in memory, no copy
            h = F.conv2d(h.unsqueeze(2), conv.weight.unsqueeze(2), conv.bias, padding=(0, conv.padding[0]),
                         dilation=(1, conv.dilation[0]), groups=conv.groups).squeeze(2)
        else:
            h = conv(h)
        return x + self.mlp(self.norm(h.transpose(1, 2)))


class PointerNet(nn.Module):
    """Pointer network on top of the baseline's cosine similarity (see the module docstring).

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
        if (n_mels < 1 or size.d < 1 or size.blocks < 0 or size.kernel < 1 or size.kernel % 2 == 0
                or size.diagonal < 0):
            raise ValueError(f"need n_mels >= 1, d >= 1, blocks >= 0, diagonal >= 0 and an odd kernel "
                             f"(got n_mels={n_mels}, {size})")
        self.n_mels = n_mels
        self.size = size
        self.project = nn.Linear(n_mels, size.d)
        self.blocks = nn.ModuleList(_ConvBlock(size.d, size.kernel, 2 ** (i % 6)) for i in range(size.blocks))
        self.out_norm = nn.LayerNorm(size.d)
        self.cosine_scale = nn.Parameter(torch.tensor(1.0 / COSINE_TEMPERATURE))
        self.learned_scale = nn.Parameter(torch.tensor(0.0))
        taps = torch.zeros(2 * size.diagonal + 1)
        taps[size.diagonal] = 1.0
        self.diagonal = nn.Parameter(taps)

    def encode(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` mels and ``(B, T)`` mask → ``(B, T, n_mels + d)`` frame features: the
        unit standardised mel, then the embedding; 0 on padded frames."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"mel must be (B, {self.n_mels}, T); got {tuple(mel.shape)}")
        unit = unit_frames(mel, mask)
        x = self.project(standardise(mel, mask).transpose(1, 2))
        for block in self.blocks:
            x = block(x, mask)
        features = torch.cat([unit, self.out_norm(x)], dim=-1)
        return features if mask.all() else features * mask.unsqueeze(-1)

    def _weighted(self, edit: torch.Tensor, baseline_weight: float = 0.0) -> torch.Tensor:
        """Edit features with the two scales applied, so that one matmul gives ``s`` (plus
        ``baseline_weight`` times the baseline's scores, see :meth:`score_rows`)."""
        cosine = self.cosine_scale + baseline_weight / COSINE_TEMPERATURE if baseline_weight else self.cosine_scale
        scale = torch.cat([cosine.expand(self.n_mels),
                           (self.learned_scale / math.sqrt(self.size.d)).expand(self.size.d)])
        return edit * scale

    def scores(self, raw: torch.Tensor, raw_mask: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
        """Smoothed scores from features: ``(B, T_edit, F)`` edit x ``(B, T_raw, F)`` raw →
        ``(B, T_edit, T_raw)``, ``-inf`` on padded raw frames."""
        logits = diagonal_smooth(torch.bmm(self._weighted(edit), raw.transpose(1, 2)).float(), self.diagonal)
        if raw_mask.all():
            return logits
        return logits.masked_fill_(~raw_mask.unsqueeze(1), float("-inf"))  # a map of our own: no copy

    def score_rows(self, raw: torch.Tensor, edit: torch.Tensor, start: int, stop: int,
                   baseline_weight: float = 0.0) -> torch.Tensor:
        """Rows ``start:stop`` of the smoothed scores of one whole recording, from features
        ``raw (T_raw, F)`` and ``edit (T_edit, F)`` (no padding): ``(stop - start, T_raw)``.
        Computes ``K`` extra rows either side, so the rows equal those of :meth:`scores`.

        ``baseline_weight`` ``w`` adds ``w`` times the baseline's scores (``cos / COSINE_TEMPERATURE``,
        smoothed as the model's are): a product of the model's and the baseline's distributions, for
        decoding. The two err differently along a segment (the embedding's errors, made from
        overlapping context, are alike from one frame to the next and do not average out over a
        segment; the cosine's do), so the weight that decodes best need not be the one the per-frame
        loss trained (0); it is chosen on held-out training recordings, never on validation."""
        half = self.size.diagonal
        low, high = max(0, start - half), min(edit.shape[0], stop + half)
        logits = (self._weighted(edit[low:high], baseline_weight) @ raw.T).float().unsqueeze(0)
        return diagonal_smooth(logits, self.diagonal)[0, start - low:stop - low]

    def score_parts(self, raw: torch.Tensor, edit: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``(2, stop - start, T_raw)``: :meth:`score_rows` at weight 0 and the baseline's smoothed
        scores, so that ``parts[0] + w * parts[1]`` is :meth:`score_rows` at weight ``w`` (smoothing
        is linear) for any number of weights, from one matmul's worth of work. For scoring only: no
        gradient reaches the two scales."""
        half, n = self.size.diagonal, self.n_mels
        low, high = max(0, start - half), min(edit.shape[0], stop + half)
        edit, raw = edit[low:high].float(), raw.float()
        both = raw.new_empty((2, high - low, raw.shape[0]))
        model, cosine = both[0], both[1]
        torch.matmul(edit[:, :n], raw[:, :n].T, out=cosine)
        torch.matmul(edit[:, n:], raw[:, n:].T, out=model)
        model.mul_(float(self.learned_scale) / math.sqrt(self.size.d)).add_(cosine, alpha=float(self.cosine_scale))
        cosine.mul_(1.0 / COSINE_TEMPERATURE)
        return diagonal_smooth(both, self.diagonal)[:, start - low:stop - low]

    def forward(self, raw_mel: torch.Tensor, raw_mask: torch.Tensor, edit_mel: torch.Tensor,
                edit_mask: torch.Tensor) -> torch.Tensor:
        return self.scores(self.encode(raw_mel, raw_mask), raw_mask, self.encode(edit_mel, edit_mask))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def pointer_loss(scores: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over real edit frames: ``scores (B, T_edit, T_raw)``, ``pointers (B, T_edit)``
    with :data:`~streams.stages.collate.IGNORE_INDEX` (-100) on padding."""
    # raw frames as the last axis of a (B * T_edit, T_raw) view: no transposed copy of the map
    return F.cross_entropy(scores.float().reshape(-1, scores.shape[-1]), pointers.reshape(-1),
                           ignore_index=IGNORE_INDEX)
