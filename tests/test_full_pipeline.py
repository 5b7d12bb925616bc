"""The plan's configuration, end to end on the demo shards, as users run it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader

from pipelines import build_pipe, load_config
from pipelines.run import run_pipeline
from streams import Batch, Sample, check_sample

from .conftest import DEMO_SAMPLES, DEMO_URLS
from .test_config import plan_example


def plan_config(*, concatenation: bool, batching: dict | None = None, **extra) -> dict:
    config = plan_example()
    config["augmentation"]["concatenation"]["enabled"] = concatenation
    return {**config, "source": {"urls": DEMO_URLS}, "seed": 7, "batching": batching or {}, **extra}


def source_count(sample: Sample) -> int:
    return len(sample.meta["parts"]) if "parts" in sample.meta else 1


def test_every_block_enabled_streams_two_epochs_with_two_workers_and_every_sample_checks():
    pipe = build_pipe(load_config(plan_config(concatenation=True, shuffle={"buffer_size": 6})))
    loader = DataLoader(pipe, batch_size=None, num_workers=2)
    fired: set[str] = set()
    for epoch in range(2):
        pipe.set_epoch(epoch)
        samples = list(loader)
        assert sum(source_count(s) for s in samples) == DEMO_SAMPLES
        for sample in samples:
            check_sample(sample)
            assert sample.raw_mel.dtype == torch.float32
            fired.update(record["stage"] for record in sample.meta.get("augmentations", ()))
    assert fired >= {"noise", "gain", "channel_dropout", "spec_augment", "crop", "chunk_shuffle", "pair"}


def _by_key(variant: str, num_workers: int) -> dict[str, Sample]:
    config = plan_config(concatenation=False, shuffle={"buffer_size": 5})
    if variant == "half-mean-shared":
        config["source"]["mel_dtype"] = "float16"
        config["augmentation"]["spec_augment"]["fill"] = "mean"
        config["augmentation"]["noise"]["mode"] = "shared"
    pipe = build_pipe(load_config(config))
    pipe.set_epoch(3)
    return {s.key: s for s in DataLoader(pipe, batch_size=None, num_workers=num_workers)}


@pytest.mark.parametrize("variant", ["plan", "half-mean-shared"])
def test_augmented_samples_are_bit_identical_per_key_with_0_1_and_2_workers(variant):
    reference = _by_key(variant, 0)
    assert len(reference) == DEMO_SAMPLES
    assert any(s.meta.get("augmentations") for s in reference.values())
    for num_workers in (1, 2):
        other = _by_key(variant, num_workers)
        assert sorted(other) == sorted(reference)
        for key, sample in reference.items():
            got = other[key]
            assert got.meta == sample.meta
            for name in ("raw_mel", "edit_mel", "pointers"):
                assert torch.equal(getattr(got, name), getattr(sample, name)), (key, name)


@pytest.mark.parametrize("pair_by", ["random", "length"])
def test_frame_budget_holds_on_the_full_configuration(pair_by):
    budget = 12_000
    config = plan_config(concatenation=True, batching={"max_frames": budget, "bucket_buffer": 8},
                         shuffle={"buffer_size": 6})
    config["augmentation"]["concatenation"].update(probability=0.5, pair_by=pair_by, buffer_size=6)
    pipe = build_pipe(load_config(config))
    samples = 0
    for batch in DataLoader(pipe, batch_size=None, num_workers=2):
        assert isinstance(batch, Batch)
        samples += sum(len(m["parts"]) if "parts" in m else 1 for m in batch.meta)
        raw_padded = len(batch) * batch.raw_mel.shape[-1]
        edit_padded = len(batch) * batch.edit_mel.shape[-1]
        assert (raw_padded <= budget and edit_padded <= budget) or len(batch) == 1
    assert samples == DEMO_SAMPLES


def test_bucketing_pads_less_than_fixed_batches_and_run_reports_both():
    fixed = plan_config(concatenation=True, batching={"batch_size": 4}, shuffle={"buffer_size": 6})
    bucketed = copy.deepcopy(fixed)
    bucketed["batching"] = {"max_frames": 12_000, "bucket_buffer": 12}
    bucketed["augmentation"]["concatenation"]["pair_by"] = "length"
    summaries = {name: run_pipeline(load_config(config), progress=False)
                 for name, config in (("fixed", fixed), ("bucketed", bucketed))}
    for summary in summaries.values():
        assert summary.samples == DEMO_SAMPLES and summary.padding_efficiency is not None
        assert any("padding efficiency" in line for line in summary.lines())
    assert summaries["bucketed"].padding_efficiency > summaries["fixed"].padding_efficiency
