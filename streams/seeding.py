"""Seeds derived from names, so randomness never depends on workers, ranks or arrival order.

Two kinds of randomness flow through a pipe:

* per-sample decisions of a stage (whether it fires, which chunks, what gain) come from
  :func:`sample_uniform` and :func:`sample_rng` (or, for stages that draw with torch,
  :func:`sample_generator`), keyed by ``(seed, epoch, stage, key)``: the same sample gets the same
  augmentation whichever worker or rank reads it, and whenever it arrives;
* order-level decisions (shard order, shuffle buffer, pairing partners) come from
  :func:`order_rng` ``(seed, epoch, stage, rank, worker)``.

Seeds are hashes (BLAKE2b) of the parts' text, never Python's ``hash`` (randomised per process)
nor the process id or time.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from numpy.random.bit_generator import ISeedSequence

__all__ = ["derive_seed", "order_rng", "sample_generator", "sample_rng", "sample_uniform"]


def _parts_text(parts: tuple[object, ...]) -> bytes:
    """The bytes hashed for ``parts``: each part's type name and ``str``, separated by 0x1f."""
    return "\x1f".join(f"{type(part).__name__}:{part}" for part in parts).encode()


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts with a stable ``str``; equal parts give equal seeds.

    >>> derive_seed(0, 1, "noise", "a") == derive_seed(0, 1, "noise", "a")
    True
    >>> derive_seed(0, 1, "noise", "a") == derive_seed(0, 1, "noise", "b")
    False
    """
    digest = hashlib.blake2b(_parts_text(parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _DigestSeedSequence(ISeedSequence):
    """A seed sequence whose state words are a hash of some text (BLAKE2b, SHAKE-256 past 64 bytes).

    numpy's ``SeedSequence`` costs about 9 us to build and expand, more than a small augmentation
    of a short sample; a hash of the key is already uniformly distributed, so its bytes can be the
    bit generator's state directly (``PCG64`` takes 4 little-endian 64-bit words: 128 bits of
    state, 128 of stream increment). It cannot spawn children.
    """

    __slots__ = ("text",)

    def __init__(self, text: bytes):
        self.text = text

    def generate_state(self, n_words: int, dtype: type | np.dtype = np.uint32) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = n_words * dtype.itemsize
        if size <= 64:
            digest = hashlib.blake2b(self.text, digest_size=size).digest()
        else:
            digest = hashlib.shake_256(self.text).digest(size)
        return np.frombuffer(digest, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def sample_rng(seed: int, epoch: int, stage: str, key: str) -> np.random.Generator:
    """The numpy generator for ``stage``'s draws about sample ``key`` in ``epoch`` (``PCG64``).

    Its state is a BLAKE2b hash of the four parts, so it is the same in every process, thread and
    worker, and costs about 5 us to make (a ``SeedSequence``-seeded one about 14 us). Every call
    returns a new generator at the start of its stream.

    >>> draws = [sample_rng(0, 1, "noise", key).random() for key in ("a", "a", "b")]
    >>> draws[0] == draws[1], draws[0] == draws[2]
    (True, False)
    """
    return np.random.Generator(np.random.PCG64(_DigestSeedSequence(_parts_text(("sample", seed, epoch, stage, key)))))


def sample_uniform(seed: int, epoch: int, stage: str, key: str) -> float:
    """A uniform float in ``[0, 1)`` for ``stage``'s yes/no decision about sample ``key`` in
    ``epoch`` (whether it fires); a hash of its own, independent of :func:`sample_rng`'s draws.

    >>> 0.0 <= sample_uniform(0, 1, "noise", "a") < 1.0
    True
    """
    return (derive_seed("fire", seed, epoch, stage, key) >> 10) / 2.0**53


def sample_generator(seed: int, epoch: int, stage: str, key: str) -> torch.Generator:
    """The torch generator for ``stage``'s decisions about sample ``key`` in ``epoch``, for
    stages that draw with torch (the built-in augmentations use :func:`sample_rng`)."""
    return torch.Generator().manual_seed(derive_seed("sample", seed, epoch, stage, key))


def order_rng(seed: int, epoch: int, stage: str, rank: int = 0, worker: int = 0) -> np.random.Generator:
    """The generator for ``stage``'s order-level decisions on one (rank, worker) in ``epoch``.

    Save it with ``rng.bit_generator.state`` and restore by assigning that dict back.
    """
    return np.random.Generator(np.random.PCG64(derive_seed("order", seed, epoch, stage, rank, worker)))
