"""A1 additive noise: Gaussian noise scaled to the mel's own spread (recording quality).

Drawing fresh Gaussian noise with ``torch.randn`` costs far more than the rest of a pipe (about
15 ms for a 128 x 30,000 mel, against about 1 ms to copy it). So noise is *read* from a fixed
table of ``2**22`` standard normal values, generated once per process from a fixed seed (the same
in every process) and cached. A sample draws where to read: row ``c`` of the noise is the table
segment ``[offset + c * row_stride, offset + c * row_stride + frames)``, multiplied by a random
sign per row and by the noise std. The signs are read the same way, as a window of a fixed table
of random signs (:func:`sign_table`) at a position given by ``sign_seed``. Reading is a strided
view of the table, so adding the noise to a mel costs one fused pass (two in shared mode, plus
gathering the edit's noise by pointer), and the per-sample work around it is a handful of small
operations: on short mels that fixed cost, not the pass, dominates.

Trade-off: within one sample the noise is i.i.d. Gaussian as long as ``n_mels * frames <= 2**22``
(rows are disjoint segments; the stride is drawn >= ``frames`` whenever that fits); longer mels
get rows that overlap as shifted copies of each other. Across samples the noise comes from the
same table (at other offsets, strides and sign windows, which overlap as shifted copies too), so
it is not independent between samples: fine for a regulariser, not for statistics. The table
costs 16 MB per process (8 MB more once float16 mels are seen), the sign table 256 KB. A mel too
long for one row of it (over ``2**22 - n_mels + 1`` frames) reads a larger table sized by its
shape, so a given sample always reads the same table.

The noise std is relative to the mel's own std, estimated from a fixed evenly strided subset of
at most :data:`STD_SAMPLE_ELEMENTS` values in numpy float64 (see :func:`mel_std`): the same in
every process whatever its thread count, and about 15 us whatever the mel's size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from ..checks import check_float, check_ordered
from ..sample import Sample
from ..seeding import derive_seed
from .registry import register_stage
from .spectral import SpectralAugmentStage, SpectralSettings, gather_frames

__all__ = ["NoiseSettings", "NoiseStage", "SIGN_TABLE_SIZE", "TABLE_SIZE", "add_table_noise", "draw_table_read",
           "gaussian_table", "mel_std", "row_signs", "sign_table", "table_noise", "table_size_for", "table_view"]

TABLE_SIZE = 1 << 22
"""Values in the default Gaussian table (16 MB as float32)."""

SIGN_TABLE_SIZE = 1 << 16
"""Signs in the default sign table (256 KB as float32); mels of more bins read a larger one."""

STD_SAMPLE_ELEMENTS = 1 << 12
"""At most this many evenly strided mel values estimate a mel's std. A full pass costs more than
adding the noise (on a short 80 x 2,000 mel, 65 us against 30 us); 4,096 values cost about 15 us
and give the std within about 1% (relative standard error ``1 / sqrt(2 * 4096)`` for Gaussian-like
values), far finer than the noise level itself, which is drawn across a 3x range."""


@functools.lru_cache(maxsize=4)
def gaussian_table(size: int = TABLE_SIZE, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fixed ``(size,)`` table of standard normal values, identical in every process.

    Generated on first use from a seed derived from ``size`` (so tables of different sizes are
    independent) and cached; other dtypes are the float32 table rounded once. Treat it as
    read-only: it is shared.
    """
    if dtype != torch.float32:
        return gaussian_table(size, torch.float32).to(dtype)
    generator = torch.Generator().manual_seed(derive_seed("gaussian-noise-table", size))
    return torch.randn(size, generator=generator)


def table_size_for(n_mels: int, frames: int) -> int:
    """The table size used for a ``(n_mels, frames)`` noise: :data:`TABLE_SIZE` unless one row
    plus the minimal row shifts do not fit in it, then the next power of two that fits."""
    needed = frames + max(n_mels - 1, 0)
    return TABLE_SIZE if needed <= TABLE_SIZE else 1 << (needed - 1).bit_length()


def _table_read(n_mels: int, frames: int, fractions: Sequence[float]) -> dict[str, int]:
    """The read of :func:`draw_table_read` from three uniform floats in ``[0, 1)``."""
    stride_fraction, offset_fraction, sign_fraction = fractions
    size = table_size_for(n_mels, frames)
    if n_mels > 1:
        max_stride = (size - frames) // (n_mels - 1)
        min_stride = max(1, min(frames, max_stride))
        row_stride = min_stride + int(stride_fraction * (max_stride - min_stride + 1))
    else:
        row_stride = max(frames, 1)
    span = max(n_mels - 1, 0) * row_stride + frames
    offset = int(offset_fraction * (size - span + 1))
    return {"offset": offset, "row_stride": row_stride, "sign_seed": int(sign_fraction * (2**31 - 1))}


def draw_table_read(n_mels: int, frames: int, generator: np.random.Generator) -> dict[str, int]:
    """Where a ``(n_mels, frames)`` noise reads the table: ``{"offset", "row_stride", "sign_seed"}``.

    The row stride is drawn in ``[min(frames, max_stride), max_stride]`` (rows disjoint whenever
    that fits), then the offset uniformly among the positions that keep the read inside the table,
    and a ``sign_seed`` in ``[0, 2**31 - 1)``: all three from one draw of three uniform floats
    (53-bit, scaled to each range).

    >>> read = draw_table_read(4, 100, np.random.default_rng(0))
    >>> sorted(read), read["row_stride"] >= 100
    (['offset', 'row_stride', 'sign_seed'], True)
    """
    return _table_read(n_mels, frames, generator.random(3).tolist())


def table_view(n_mels: int, frames: int, *, offset: int, row_stride: int, dtype: torch.dtype = torch.float32
               ) -> torch.Tensor:
    """The ``(n_mels, frames)`` strided view of the table a read describes (no copy; read-only).

    ``view[c, t] = table[offset + c * row_stride + t]``. A read that would leave the table raises
    ``ValueError``.
    """
    size = table_size_for(n_mels, frames)
    span = max(n_mels - 1, 0) * row_stride + frames
    if offset < 0 or row_stride < 1 or offset + span > size:
        raise ValueError(f"table read offset={offset}, row_stride={row_stride} for a ({n_mels}, {frames}) noise "
                         f"leaves the {size}-value table; use draw_table_read() to get a valid read")
    return gaussian_table(size, dtype).as_strided((n_mels, frames), (row_stride, 1), offset)


@functools.lru_cache(maxsize=8)
def sign_table(size: int = SIGN_TABLE_SIZE, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fixed ``(size, 1)`` table of random signs (``+1`` or ``-1``, fair and independent),
    identical in every process; cached like :func:`gaussian_table`. Treat it as read-only."""
    if dtype != torch.float32:
        return sign_table(size, torch.float32).to(dtype)
    generator = torch.Generator().manual_seed(derive_seed("noise-sign-table", size))
    return torch.randint(0, 2, (size, 1), generator=generator).mul_(2).sub_(1).to(torch.float32)


def row_signs(n_mels: int, sign_seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n_mels, 1)`` random signs, one per row: the window of :func:`sign_table` at position
    ``sign_seed mod (size - n_mels + 1)`` (a view; read-only): a cached table and a slice, where
    seeding a generator per sample to draw the signs costs several tensor operations.

    >>> signs = row_signs(5, 7)
    >>> signs.shape, bool(torch.equal(signs, row_signs(5, 7))), sorted(set(signs.flatten().tolist())) <= [-1.0, 1.0]
    (torch.Size([5, 1]), True, True)
    """
    size = SIGN_TABLE_SIZE if n_mels <= SIGN_TABLE_SIZE // 2 else 1 << (2 * n_mels - 1).bit_length()
    start = int(sign_seed) % (size - n_mels + 1)
    return sign_table(size, dtype)[start:start + n_mels]


def table_noise(n_mels: int, frames: int, *, offset: int, row_stride: int, sign_seed: int, noise_std: float,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A new ``(n_mels, frames)`` tensor of noise with std ``noise_std``, read from the table.

    ``noise[c, t] = sign[c] * noise_std * table[offset + c * row_stride + t]`` with ``sign`` from
    :func:`row_signs` ``(n_mels, sign_seed)``. A read that would leave the table raises ``ValueError``.

    >>> noise = table_noise(2, 3, offset=0, row_stride=3, sign_seed=0, noise_std=1.0)
    >>> noise.shape, bool((noise.abs() == gaussian_table()[:6].view(2, 3).abs()).all())
    (torch.Size([2, 3]), True)
    """
    view = table_view(n_mels, frames, offset=offset, row_stride=row_stride, dtype=dtype)
    return view * (row_signs(n_mels, sign_seed, dtype) * noise_std)  # (n_mels, 1) factors ±noise_std


def mel_std(mel: torch.Tensor) -> float:
    """Population std of ``mel``'s values, estimated from at most :data:`STD_SAMPLE_ELEMENTS` of
    them; 0.0 for an empty mel.

    The subset is fixed: every ``step``-th value in row-major order (``step = ceil(numel /
    STD_SAMPLE_ELEMENTS)``), whatever the tensor's memory layout, so rows and frames are both
    spread over. Computed by numpy in float64 (pairwise summation in one thread): torch's
    reductions split the work by thread count, so a DataLoader worker (one thread) and the main
    process would round differently and the noise would not be bit-identical across worker counts.

    >>> mel_std(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
    1.0
    """
    count = mel.numel()
    if count == 0:
        return 0.0
    step = -(-count // STD_SAMPLE_ELEMENTS)
    if mel.is_contiguous():
        subset = mel.numpy().reshape(-1)[::step]
    else:
        subset = torch.take(mel, torch.arange(0, count, step)).numpy()
    values = subset.astype(np.float64)  # a copy: squared deviations are made in place
    values -= np.add.reduce(values) / values.size
    values *= values
    return math.sqrt(np.add.reduce(values) / values.size)


def add_table_noise(mel: torch.Tensor, *, level: float, mel_std: float, offset: int, row_stride: int,
                    sign_seed: int, in_place: bool = False) -> torch.Tensor:
    """``mel`` plus table noise of std ``level * mel_std`` (a new tensor; ``mel`` itself if that is 0,
    or with ``in_place``: the same kernel writing into ``mel``, so the same values).

    One fused pass (``addcmul`` of the table view and the row signs, scaled by the noise std),
    reading the mel and a table segment of the same size. Whether the product is rounded before
    the sum may differ between the vector body and the tail of that kernel, so this is for one
    mel alone; shared mode, which must give raw and edit bit-identical sums, multiplies then adds.

    >>> mel = torch.zeros(2, 4)
    >>> add_table_noise(mel, level=0.1, mel_std=0.0, offset=0, row_stride=4, sign_seed=1) is mel
    True
    """
    noise_std = level * mel_std
    if noise_std == 0.0:
        return mel
    view = table_view(mel.shape[0], mel.shape[1], offset=offset, row_stride=row_stride, dtype=mel.dtype)
    signs = row_signs(mel.shape[0], sign_seed, mel.dtype)
    if in_place:
        return torch.addcmul(mel, view, signs, value=noise_std, out=mel)
    return torch.addcmul(mel, view, signs, value=noise_std)


class NoiseSettings(SpectralSettings):
    """The ``noise`` block (A1), ``probability`` as in the plan; :class:`NoiseStage` documents the fields."""

    probability: float = 0.5
    level_min: float = 0.05
    level_max: float = 0.15
    mode: Literal["shared", "independent"] = "independent"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered(check_float(self.level_min, "level_min"), check_float(self.level_max, "level_max"),
                      "level_min", "level_max")


@register_stage("noise", NoiseSettings)
class NoiseStage(SpectralAugmentStage):
    """Add Gaussian noise whose std is ``level`` times the mel's std, ``level`` drawn uniformly in
    ``[level_min, level_max]``.

    Args:
        level_min, level_max: range of the relative noise level (plan: 0.05 .. 0.15).
        mode: ``"independent"`` (default): raw and edit get their own level, read and std (the
            plan's "different recording conditions", which it calls more realistic).
            ``"shared"``: one level and one table read, drawn on the raw mel and scaled by the raw
            mel's std; edit frame ``i`` gets exactly the noise of raw frame ``pointers[i]``, so the
            pointer content invariant holds.

    Edges: a mel with zero std (constant, a single value, or empty) gets no noise, since the
    noise is relative to its spread. Params recorded: ``{"mode": "shared", "level", "mel_std",
    "offset", "row_stride", "sign_seed"}`` (or per mel under ``"raw"``/``"edit"``).

    >>> from streams.stages.noise import NoiseStage
    >>> from streams.sample import Sample
    >>> raw = torch.arange(12.0).view(2, 6)
    >>> s = Sample("a", raw, raw[:, [4, 4, 1]], torch.tensor([4, 4, 1]))
    >>> out = NoiseStage(probability=1.0, mode="shared").augment(s, seed=3)
    >>> bool(torch.equal(out.edit_mel, out.raw_mel[:, [4, 4, 1]])), bool(torch.equal(out.raw_mel, raw))
    (True, False)
    """

    name = "noise"

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        level_fraction, *read_fractions = generator.random(4).tolist()  # every scalar in one draw
        level = self.level_min + (self.level_max - self.level_min) * level_fraction
        return {"level": level, "mel_std": mel_std(mel), **_table_read(mel.shape[0], mel.shape[1], read_fractions)}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any], in_place: bool = False) -> torch.Tensor:
        return add_table_noise(mel, **decision, in_place=in_place)

    def apply_shared(self, sample: Sample, decision: dict[str, Any], in_place: bool = False) -> Sample:
        noise_std = decision["level"] * decision["mel_std"]
        if noise_std == 0.0:
            return sample
        raw_noise = table_noise(sample.n_mels, sample.raw_frames, offset=decision["offset"],
                                row_stride=decision["row_stride"], sign_seed=decision["sign_seed"],
                                noise_std=noise_std, dtype=sample.raw_mel.dtype)
        edit_noise = gather_frames(raw_noise, sample.pointers)  # before raw_noise becomes the output
        if in_place:  # mel + noise, where the new tensors hold noise + mel: the same sums
            return sample.replace(raw_mel=sample.raw_mel.add_(raw_noise), edit_mel=sample.edit_mel.add_(edit_noise))
        return sample.replace(raw_mel=raw_noise.add_(sample.raw_mel), edit_mel=edit_noise.add_(sample.edit_mel))
