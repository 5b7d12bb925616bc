"""Seeds derived from names, so randomness never depends on workers, ranks or arrival order.

Two kinds of randomness flow through a pipe:

* per-sample decisions of a stage (which chunks, what gain) come from
  :func:`sample_generator` ``(seed, epoch, stage, key)``: the same sample gets the same
  augmentation whichever worker or rank reads it, and whenever it arrives;
* order-level decisions (shard order, shuffle buffer, pairing partners) come from
  :func:`order_generator` ``(seed, epoch, stage, rank, worker)``.

Seeds are hashes (BLAKE2b) of the parts' text, never Python's ``hash`` (randomised per process)
nor the process id or time.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["derive_seed", "order_rng", "sample_generator"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts with a stable ``str``; equal parts give equal seeds.

    >>> derive_seed(0, 1, "noise", "a") == derive_seed(0, 1, "noise", "a")
    True
    >>> derive_seed(0, 1, "noise", "a") == derive_seed(0, 1, "noise", "b")
    False
    """
    text = "\x1f".join(f"{type(part).__name__}:{part}" for part in parts)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_generator(seed: int, epoch: int, stage: str, key: str) -> torch.Generator:
    """The generator for ``stage``'s decisions about sample ``key`` in ``epoch``."""
    return torch.Generator().manual_seed(derive_seed("sample", seed, epoch, stage, key))


def order_rng(seed: int, epoch: int, stage: str, rank: int = 0, worker: int = 0) -> np.random.Generator:
    """The generator for ``stage``'s order-level decisions on one (rank, worker) in ``epoch``.

    Save it with ``rng.bit_generator.state`` and restore by assigning that dict back.
    """
    return np.random.Generator(np.random.PCG64(derive_seed("order", seed, epoch, stage, rank, worker)))
