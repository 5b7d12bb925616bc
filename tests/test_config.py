"""Config loading: the plan's example loads unchanged; bad configs name the field."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from pipelines import ConfigError, build_pipe, load_config
from streams import Pipe

from .conftest import DEMO_URLS, REPO

PLAN = os.path.join(os.path.dirname(REPO), "shared", "reference", "augmentation-plan.md")
PLAN_EXAMPLE = os.path.join(REPO, "tests", "data", "plan_example.json")
CONFIGS = os.path.join(REPO, "pipelines", "configs")


def plan_example() -> dict:
    """The plan's configuration example, as copied verbatim into ``tests/data/plan_example.json``."""
    with open(PLAN_EXAMPLE) as f:
        return json.load(f)


@pytest.mark.skipif(not os.path.exists(PLAN), reason="the plan (shared/reference) is not beside this clone")
def test_the_copied_example_is_the_plans_verbatim():
    with open(PLAN) as f:
        section = f.read().split("## Configuration Example", 1)[1]
    with open(PLAN_EXAMPLE) as f:
        assert f.read() == re.search(r"```json\n(.*?)```", section, re.S).group(1)


def test_plan_example_loads_unchanged():
    example = plan_example()
    config = load_config({**example, "source": {"urls": DEMO_URLS}})
    assert config.augment
    assert config.augmentation.noise.level_max == 0.15
    assert config.augmentation.spec_augment.time_width == 50
    assert not config.augmentation.concatenation.enabled
    assert isinstance(build_pipe(config), Pipe)


def test_full_config_holds_the_plan_block():
    with open(os.path.join(CONFIGS, "full.json")) as f:
        full = json.load(f)
    assert full["augmentation"] == plan_example()["augmentation"]


@pytest.mark.parametrize("name", ["mini.json", "full.json"])
def test_named_configs_load_and_resolve_shards_next_to_the_repo(name):
    config = load_config(os.path.join(CONFIGS, name))
    assert os.path.isabs(config.source.urls)
    assert "shards/demo" in config.source.urls


def test_flat_augmentation_switch_wins():
    on = load_config({"source": {"urls": DEMO_URLS}, "augmentation_enabled": True,
                      "augmentation": {"noise": {"enabled": True}}})
    off = load_config({"source": {"urls": DEMO_URLS}, "augmentation_enabled": False,
                       "augmentation": {"enabled": True, "noise": {"enabled": True}}})
    assert on.augment and not off.augment
    assert len(build_pipe(on).stages) == 2 and len(build_pipe(off).stages) == 1


def test_config_is_frozen():
    config = load_config({"source": {"urls": DEMO_URLS}})
    with pytest.raises(AttributeError):
        config.seed = 3


BAD = [
    ({"sed": 1}, r"^sed: unknown key; did you mean 'seed'\?"),
    ({"augmentation": {"noise": {"probabilty": 0.5}}},
     r"^augmentation\.noise\.probabilty: unknown key; did you mean 'probability'"),
    ({"seed": "one"}, r"^seed: expected an integer, got \"one\""),
    ({"seed": True}, r"^seed: expected an integer"),
    ({"augmentation": {"gain": {"enabled": "yes"}}}, r"^augmentation\.gain\.enabled: expected true or false"),
    ({"augmentation": {"enabled": True, "noise": {"enabled": True, "probability": 1.5}}},
     r"^augmentation\.noise\.probability: .*1\.5"),
    ({"augmentation": {"enabled": True, "gain": {"enabled": True, "scale_min": 1.4, "scale_max": 1.2}}},
     r"^augmentation\.gain\.scale_min: .*scale_max"),
    ({"augmentation": {"enabled": True, "crop": {"enabled": True, "min_len": -5}}}, r"^augmentation\.crop\.min_len: "),
    ({"shuffle": {"buffer_size": -1}}, r"^shuffle\.buffer_size: .*buffer_size"),
    ({"batching": {"batch_size": 0}}, r"^batching\.batch_size: "),
    ({"source": {"urls": "x-{000..003.tar"}}, r"^source\.urls: .*unbalanced braces"),
    ({"source": {"urls": ""}}, r"^source\.urls: no shards given"),
    ({"source": {"urls": DEMO_URLS, "on_error": "ignore"}}, r"^source\.on_error: expected \"raise\" or \"skip\""),
    ({"augmentation": {"spec_augment": {"fill": "noise"}}},
     r"^augmentation\.spec_augment\.fill: expected \"zero\" or \"mean\""),
    ({"augmentation": []}, r"^augmentation: expected an object"),
]


@pytest.mark.parametrize("patch, message", BAD)
def test_bad_configs_name_the_field(patch, message):
    data = copy.deepcopy({"source": {"urls": DEMO_URLS}})
    for key, value in patch.items():
        nested = isinstance(value, dict) and isinstance(data.get(key), dict)
        data[key] = {**data.get(key, {}), **value} if nested else value
    with pytest.raises(ConfigError, match=message):
        load_config(data)


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_schedule_block_reaches_every_augmentation_stage():
    config = load_config({"source": {"urls": DEMO_URLS}, "augmentation": {
        "enabled": True, "warmup_epochs": 1,
        "schedule": {"kind": "linear", "decay_epochs": 2, "start_factor": 0.5, "end_factor": 1.0},
        "noise": {"enabled": True, "probability": 0.8}, "crop": {"enabled": True, "probability": 0.4}}})
    stages = build_pipe(config).stages[1:]
    assert [s.name for s in stages] == ["crop", "noise"]
    for stage in stages:
        ramp = [stage.probability_at(epoch) / stage.probability for epoch in range(5)]
        assert ramp == pytest.approx([0.0, 0.5, 0.75, 1.0, 1.0])
    with pytest.raises(ConfigError, match=r"^augmentation\.schedule\.start_factor: .*1\.5"):
        load_config({"source": {"urls": DEMO_URLS}, "augmentation": {"schedule": {"start_factor": 1.5}}})
