"""One declaration per stage: a registered stage's settings are its config block, both ways, and
the pipe's pairing and ``AugmentedDataset`` choose partners by the same rule."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import ConfigError, load_config
from pipelines.augmentor import Augmentor
from pipelines.config import AUGMENTATION_ORDER, AugmentationConfig, Config
from pipelines.dataset import AugmentedDataset
from streams import Pipe
from streams.checks import FieldError
from streams.stages.pairing import PairSettings
from streams.stages.registry import REGISTRY, settings_values
from streams.tools.invariants import make_tagged_sample

from .conftest import DEMO_URLS

CHANGED = {  # a non-default, valid value for some field of each block (the round trip must keep it)
    "crop": {"min_len": 7, "max_len": 9, "context": 0},
    "concatenation": {"buffer_size": 3, "max_raw_frames": 50, "pair_by": "length"},
    "chunk_shuffle": {"chunk_size": 13},
    "gain": {"scale_min": 0.5, "domain": "db"},
    "channel_dropout": {"dropout_rate": 0.25, "mode": "independent"},
    "spec_augment": {"freq_width": [3, 9], "time_masks": [0, 2], "fill": "mean", "time_mask_ratio": None},
    "noise": {"level_max": 0.5, "mode": "shared"},
}


def _load(block: str, fields: dict) -> Config:
    return load_config({"source": {"urls": DEMO_URLS}, "augmentation": {"enabled": True, block: fields}})


def test_the_augmentation_group_is_the_registered_blocks_in_pipe_order():
    names = [f.name for f in dataclasses.fields(AugmentationConfig)]
    assert names == ["enabled", "warmup_epochs", "schedule", *AUGMENTATION_ORDER]
    assert set(AUGMENTATION_ORDER) <= set(REGISTRY) and set(CHANGED) == set(AUGMENTATION_ORDER)
    for block in AUGMENTATION_ORDER:
        assert getattr(AugmentationConfig(), block) == REGISTRY[block].settings_class()


@pytest.mark.parametrize("block", AUGMENTATION_ORDER)
@pytest.mark.parametrize("changed", [False, True])
def test_a_block_round_trips_through_json_and_the_stage(block, changed):
    cls = REGISTRY[block].settings_class
    made = cls(enabled=True, **(CHANGED[block] if changed else {}))
    as_json = json.loads(json.dumps(dataclasses.asdict(made)))
    loaded = getattr(_load(block, as_json).augmentation, block)
    assert loaded == made and type(loaded) is cls
    stage = REGISTRY[block](**settings_values(loaded))
    assert stage.settings == made  # the stage's settings are the block that builds it
    assert all(getattr(stage, name) == value for name, value in settings_values(made).items())


@pytest.mark.parametrize("block", AUGMENTATION_ORDER)
def test_a_block_refuses_unknown_keys_with_did_you_mean_and_bad_values_with_the_path(block):
    field = next(name for name in settings_values(REGISTRY[block].settings_class()) if name != "probability")
    with pytest.raises(ConfigError) as info:
        _load(block, {"enabled": True, field + "s": 1})
    assert info.value.path == f"augmentation.{block}.{field}s"
    assert f"did you mean {field!r}" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _load(block, {"enabled": False, "probability": 1.5})  # checked even when the block is off
    assert info.value.path == f"augmentation.{block}.probability"
    assert str(info.value) == f"augmentation.{block}.probability: probability must be between 0.0 and 1.0 (1.5 given)"


@pytest.mark.parametrize("block", AUGMENTATION_ORDER)
def test_a_stage_made_in_code_checks_its_fields_and_refuses_the_config_switch(block):
    stage_class = REGISTRY[block]
    with pytest.raises(FieldError) as info:
        stage_class(probability=-0.5)
    assert info.value.field == "probability"
    with pytest.raises(FieldError) as info:
        stage_class(enabled=True)
    assert info.value.field == "enabled" and "leave it out of the pipe" in str(info.value)


def _samples(lengths: list[tuple[int, int]], tags: list[str | None]) -> list:
    generator = torch.Generator().manual_seed(0)
    samples = []
    for i, ((raw, edit), tag) in enumerate(zip(lengths, tags)):
        sample = make_tagged_sample(f"s{i}", 2, raw, torch.randint(0, raw, (edit,), generator=generator),
                                    generator=generator)
        samples.append(sample if tag is None else sample.replace(meta={"tag": tag}))
    return samples


@pytest.mark.filterwarnings("ignore:pairing by meta field")  # a first sample without the tag: the pipe says so
@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=2, max_size=7),
       tags=st.lists(st.sampled_from(["a", "b", None]), min_size=7, max_size=7),
       pair_by=st.sampled_from(["random", "length", "tag"]), max_raw=st.one_of(st.none(), st.integers(2, 60)),
       seed=st.integers(0, 2**20))
def test_the_pipe_and_the_dataset_choose_the_same_partner(lengths, tags, pair_by, max_raw, seed):
    """With a buffer that holds every other sample, the first sample's partner follows one rule in
    both: the same when the rule leaves one choice (``length`` with a unique closest, or a single
    eligible sample), an eligible one otherwise, none in both when none is eligible."""
    samples = _samples(lengths, tags[:len(lengths)])
    pair = PairSettings(enabled=True, probability=1.0, buffer_size=len(samples), max_raw_frames=max_raw,
                        pair_by=pair_by)
    first = Pipe.from_samples(samples, seed=seed).then(REGISTRY["concatenation"](**settings_values(pair)))
    streamed = next(iter(first))
    piped = int(streamed.key.split("+")[1][1:]) if "+" in streamed.key else None
    config = Config(seed=seed, augmentation=AugmentationConfig(enabled=True, concatenation=pair))
    dataset = AugmentedDataset(samples, Augmentor.from_config(config))
    chosen = dataset.partner(0, 0)

    lead = samples[0]
    eligible = [i for i in range(1, len(samples))
                if (pair_by != "tag" or ("tag" in lead.meta and samples[i].meta.get("tag") == lead.meta["tag"]))
                and (max_raw is None or lead.raw_frames + samples[i].raw_frames <= max_raw)]
    if not eligible:
        assert piped is None and chosen is None
        return
    assert piped in eligible and chosen in eligible
    size = [s.raw_frames + s.edit_frames for s in samples]
    gaps = sorted(abs(size[i] - size[0]) for i in eligible)
    if len(eligible) == 1 or (pair_by == "length" and gaps[0] < gaps[1]):
        assert piped == chosen
    if pair_by == "length":
        assert abs(size[chosen] - size[0]) == gaps[0]
