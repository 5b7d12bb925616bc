"""The preview renderer writes one readable PNG per stage."""

from __future__ import annotations

import torch

from streams.stages.chunk_shuffle import ChunkShuffleStage
from streams.stages.crop import CropStage
from streams.stages.noise import NoiseStage
from streams.stages.spec_augment import SpecAugmentStage
from streams.tools.invariants import make_tagged_sample
from streams.tools.preview import render_preview

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_render_preview_writes_one_png_per_stage(tmp_path):
    generator = torch.Generator().manual_seed(0)
    pointers = torch.randint(0, 120, (80,), generator=generator)
    sample = make_tagged_sample("preview/sample", 16, 120, pointers, generator=generator, dtype=torch.float16)
    stages = [("crop", CropStage(probability=0.0, min_len=10, max_len=40, context=5)),
              ("chunk_shuffle", ChunkShuffleStage(chunk_size=25)),
              ("spec augment", SpecAugmentStage(freq_width=(2, 4), time_width=(5, 10))),
              ("noise", NoiseStage(mode="independent"))]
    before = sample.raw_mel.clone()
    paths = render_preview(sample, stages, tmp_path / "out", seed=1)
    assert [p.name for p in paths] == ["00_crop.png", "01_chunk_shuffle.png", "02_spec_augment.png", "03_noise.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert torch.equal(sample.raw_mel, before)


def test_render_preview_handles_an_empty_edit(tmp_path):
    sample = make_tagged_sample("empty", 4, 30, torch.zeros(0, dtype=torch.int64))
    (path,) = render_preview(sample, [("crop", CropStage(min_len=1, max_len=5))], tmp_path)
    assert path.stat().st_size > 0
