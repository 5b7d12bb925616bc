"""Padding collation: a list of samples → one :class:`Batch` of padded tensors with masks.

Importing this module (``import streams`` does) registers both types with torch's
``default_collate_fn_map``, the extension point torch documents for ``default_collate``, so a
``DataLoader`` with its default ``collate_fn`` understands them:

* ``DataLoader(pipe)`` over a pipe that batches: each item is already a :class:`Batch`; the
  default ``batch_size=1`` hands it over as it is (the same as ``batch_size=None``);
* ``DataLoader(pipe, batch_size=N)`` over a pipe of samples: N samples are padded into a
  :class:`Batch` by :func:`collate_samples`, as the batching stage does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import default_collate_fn_map

from ..sample import Origin, Sample
from ..worker_buffers import register_transport, shared_empty

__all__ = ["IGNORE_INDEX", "Batch", "collate_samples"]

IGNORE_INDEX = -100
"""Pointer padding: the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``."""


@register_transport
@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    """Padded samples, ready for a model.

    Attributes:
        keys: the sample keys, in batch order.
        raw_mel: ``(B, n_mels, max T_raw)``, zero-padded.
        raw_lengths: ``(B,)`` int64, real raw frames per sample.
        raw_mask: ``(B, max T_raw)`` bool, true on real frames.
        edit_mel: ``(B, n_mels, max T_edit)``, zero-padded.
        edit_lengths: ``(B,)`` int64.
        edit_mask: ``(B, max T_edit)`` bool.
        pointers: ``(B, max T_edit)`` int64, padded with ``IGNORE_INDEX`` (-100).
        meta: the samples' metadata dicts.
        origins: the samples' origins (for resuming).
    """

    keys: list[str]
    raw_mel: torch.Tensor
    raw_lengths: torch.Tensor
    raw_mask: torch.Tensor
    edit_mel: torch.Tensor
    edit_lengths: torch.Tensor
    edit_mask: torch.Tensor
    pointers: torch.Tensor
    meta: list[dict[str, Any]]
    origins: list[Origin | None]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def padded_frames(self) -> int:
        """Frames including padding: ``B * (max T_raw + max T_edit)``."""
        return len(self) * (self.raw_mel.shape[-1] + self.edit_mel.shape[-1])

    @property
    def real_frames(self) -> int:
        """Frames excluding padding: ``sum(T_raw + T_edit)``."""
        return int(self.raw_lengths.sum() + self.edit_lengths.sum())

    def _map_tensors(self, fn) -> Batch:
        changes = {f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **changes)

    def to(self, *args: Any, **kwargs: Any) -> Batch:
        """Move every tensor, like ``nn.Module.to``: ``batch.to("cuda", non_blocking=True)``.

        A dtype applies to the mels only; lengths, masks and pointers keep theirs.
        """
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)

        def move(tensor: torch.Tensor) -> torch.Tensor:
            target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
            return tensor.to(device=device, dtype=target, non_blocking=non_blocking)

        return self._map_tensors(move)

    def pin_memory(self) -> Batch:
        """Pinned copy; called by ``DataLoader(pin_memory=True)``."""
        return self._map_tensors(torch.Tensor.pin_memory)


def _pad_stack(tensors: Sequence[torch.Tensor], length: int, fill: float | int) -> torch.Tensor:
    """``tensors`` padded to ``length`` with ``fill`` and stacked. In a DataLoader worker the result
    is made in one of the worker's reusable shared-memory buffers (:mod:`streams.worker_buffers`), so
    reaching the main process costs no second copy and, once the main process has let an earlier
    batch go, no new segment either."""
    out = shared_empty(tensors[0], (len(tensors), *tensors[0].shape[:-1], length))
    for row, tensor in zip(out, tensors):  # one copy per sample; each byte is written once
        frames = tensor.shape[-1]
        row[..., :frames] = tensor
        row[..., frames:] = fill
    return out


def _mask(lengths: torch.Tensor, length: int) -> torch.Tensor:
    return torch.arange(length) < lengths[:, None]


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """Pad and stack ``samples`` (same ``n_mels`` and dtype) into a :class:`Batch`.

    >>> import torch
    >>> a = Sample("a", torch.ones(2, 3), torch.ones(2, 1), torch.tensor([2]))
    >>> b = Sample("b", torch.ones(2, 1), torch.ones(2, 2), torch.tensor([0, 0]))
    >>> batch = collate_samples([a, b])
    >>> batch.pointers.tolist()
    [[2, -100], [0, 0]]
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    n_mels = {s.n_mels for s in samples}
    if len(n_mels) > 1:
        raise ValueError(f"samples in one batch must share n_mels, got {sorted(n_mels)} "
                         f"(keys {[s.key for s in samples]}); keep one mel filterbank per shard set")
    raw_lengths = torch.tensor([s.raw_frames for s in samples], dtype=torch.int64)
    edit_lengths = torch.tensor([s.edit_frames for s in samples], dtype=torch.int64)
    max_raw, max_edit = int(raw_lengths.max()), int(edit_lengths.max())
    return Batch(
        keys=[s.key for s in samples],
        raw_mel=_pad_stack([s.raw_mel for s in samples], max_raw, 0.0),
        raw_lengths=raw_lengths,
        raw_mask=_mask(raw_lengths, max_raw),
        edit_mel=_pad_stack([s.edit_mel for s in samples], max_edit, 0.0),
        edit_lengths=edit_lengths,
        edit_mask=_mask(edit_lengths, max_edit),
        pointers=_pad_stack([s.pointers for s in samples], max_edit, IGNORE_INDEX),
        meta=[s.meta for s in samples],
        origins=[s.origin for s in samples],
    )


def _collate_batches(batches: Sequence[Batch], *, collate_fn_map: Any = None) -> Batch:
    if len(batches) == 1:
        return batches[0]
    raise TypeError(f"the DataLoader asked to collate {len(batches)} Batches into one, but the pipe already makes "
                    "batches (its batching stage); use DataLoader(pipe) or DataLoader(pipe, batch_size=None), or "
                    "remove the config's batching block and let DataLoader(pipe, batch_size=N) pad the samples")


def _collate_sample_list(samples: Sequence[Sample], *, collate_fn_map: Any = None) -> Batch:
    return collate_samples(samples)


# torch's documented extension point of default_collate (see torch.utils.data._utils.collate.collate)
default_collate_fn_map[Batch] = _collate_batches
default_collate_fn_map[Sample] = _collate_sample_list
