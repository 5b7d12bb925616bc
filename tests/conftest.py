"""Shared fixtures: the demo shards and small synthetic shard sets written per test."""

from __future__ import annotations

import os

import pytest
import torch

from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import synthetic_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_URLS = os.path.join(REPO, "shards", "demo", "demo-{000000..000004}.tar")
DEMO_SAMPLES = 24


@pytest.fixture
def demo_urls() -> str:
    return DEMO_URLS


@pytest.fixture
def make_shards(tmp_path):
    """``make_shards(count, per_shard, ...)`` → (brace pattern, samples written)."""

    def make(count: int = 12, per_shard: int = 3, *, n_mels: int = 8, min_frames: int = 40, max_frames: int = 120,
             seed: int = 0, dtype: torch.dtype = torch.float32, name: str = "set"):
        samples = synthetic_dataset(count, seed=seed, n_mels=n_mels, min_frames=min_frames, max_frames=max_frames,
                                    dtype=dtype, prefix=name)
        directory = tmp_path / name
        index = write_shards(samples, str(directory / f"{name}-%06d.tar"), max_samples=per_shard)
        pattern = str(directory / f"{name}-{{{0:06d}..{len(index) - 1:06d}}}.tar")
        return pattern, samples

    return make
