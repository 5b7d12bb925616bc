"""Bad configs are rejected by ``load_config`` with the dotted path of the field at fault.

Every case below must raise :class:`ConfigError` whose ``path`` is the field's full path and whose
message starts with it and shows the bad value; none may get past loading (stages are built at
load time) or fail with another exception type.
"""

from __future__ import annotations

import copy
import json

import pytest

from pipelines import ConfigError, load_config

from .conftest import DEMO_URLS


def _with(patch: dict) -> dict:
    """The minimal valid config, deep-merged with ``patch``."""
    def merge(base: dict, extra: dict) -> dict:
        out = copy.deepcopy(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return merge({"source": {"urls": DEMO_URLS}}, patch)


def _aug(block: str, **fields) -> dict:
    return {"augmentation": {"enabled": True, block: {"enabled": True, **fields}}}


UNKNOWN_KEYS = [
    ({"sede": 1}, "sede", "did you mean 'seed'"),
    ({"source": {"on_eror": "skip"}}, "source.on_eror", "did you mean 'on_error'"),
    ({"source": {"mel_type": "float16"}}, "source.mel_type", "did you mean 'mel_dtype'"),
    (_aug("noise", level_mn=0.1), "augmentation.noise.level_mn", "did you mean 'level_min'"),
    ({"augmentation": {"schedule": {"knd": "linear"}}}, "augmentation.schedule.knd", "did you mean 'kind'"),
    ({"batching": {"batchsize": 8}}, "batching.batchsize", "did you mean 'batch_size'"),
    ({"augmentation": {"spectrogram": {}}}, "augmentation.spectrogram", "known keys here: enabled, warmup_epochs"),
]

WRONG_TYPES = [
    ({"seed": 1.5}, "seed", "expected an integer, got 1.5"),
    ({"source": {"urls": 7}}, "source.urls", "got 7"),
    ({"source": {"urls": [DEMO_URLS, 3]}}, "source.urls", "got"),
    ({"source": {"shuffle_shards": "yes"}}, "source.shuffle_shards", "expected true or false, got \"yes\""),
    ({"source": {"on_error": "ignore"}}, "source.on_error", "expected \"raise\" or \"skip\", got \"ignore\""),
    ({"source": {"on_error": None}}, "source.on_error", "got null"),
    ({"source": {"mel_dtype": "float64"}}, "source.mel_dtype", "expected \"float32\" or \"float16\""),
    (_aug("noise", probability="high"), "augmentation.noise.probability", "expected a number, got \"high\""),
    (_aug("spec_augment", freq_masks=1.5), "augmentation.spec_augment.freq_masks", "expected an integer"),
    (_aug("spec_augment", freq_masks=1.5), "augmentation.spec_augment.freq_masks", "got 1.5"),
    (_aug("crop", min_len=True), "augmentation.crop.min_len", "expected an integer, got true"),
    ({"shuffle": {"buffer_size": "8"}}, "shuffle.buffer_size", "expected an integer, got \"8\""),
    ({"batching": {"drop_last": 1}}, "batching.drop_last", "expected true or false or null, got 1"),
    ({"augmentation": {"noise": []}}, "augmentation.noise", "expected an object"),
]

PROBABILITIES = [
    (_aug(block, probability=value), f"augmentation.{block}.probability", f"({value!r} given)")
    for block, value in [("noise", 1.5), ("gain", -0.1), ("channel_dropout", 2.0), ("spec_augment", 1.0001),
                         ("crop", -1.0), ("chunk_shuffle", 7.0), ("concatenation", 1.2)]
] + [
    (_aug("channel_dropout", dropout_rate=1.5), "augmentation.channel_dropout.dropout_rate", "1.5 given"),
    (_aug("spec_augment", max_time_fraction=-0.5), "augmentation.spec_augment.max_time_fraction", "-0.5 given"),
    ({"augmentation": {"enabled": True, "schedule": {"kind": "linear", "end_factor": 2.0}}},
     "augmentation.schedule.end_factor", "2.0 given"),
]

MIN_OVER_MAX = [
    (_aug("noise", level_min=0.3, level_max=0.1), "augmentation.noise.level_min", "level_max"),
    (_aug("gain", scale_min=1.4, scale_max=1.2), "augmentation.gain.scale_min", "scale_max"),
    (_aug("crop", min_len=600, max_len=500), "augmentation.crop.min_len", "max_len"),
]

NEGATIVE_SIZES = [
    ({"shuffle": {"buffer_size": -1}}, "shuffle.buffer_size", "-1"),
    ({"batching": {"batch_size": 0}}, "batching.batch_size", "0"),
    ({"batching": {"max_frames": -5}}, "batching.max_frames", "-5"),
    ({"batching": {"max_frames": 100, "bucket_buffer": 0}}, "batching.bucket_buffer", "0"),
    (_aug("crop", min_len=-5), "augmentation.crop.min_len", "-5"),
    (_aug("crop", context=-1), "augmentation.crop.context", "-1"),
    (_aug("chunk_shuffle", chunk_size=0), "augmentation.chunk_shuffle.chunk_size", "0"),
    (_aug("spec_augment", freq_width=-1), "augmentation.spec_augment.freq_width", "-1"),
    (_aug("spec_augment", time_masks=-2), "augmentation.spec_augment.time_masks", "-2"),
    (_aug("concatenation", buffer_size=1), "augmentation.concatenation.buffer_size", "1 given"),
    (_aug("concatenation", max_raw_frames=0), "augmentation.concatenation.max_raw_frames", "0 given"),
    (_aug("noise", level_min=-0.3), "augmentation.noise.level_min", "-0.3"),
    ({"augmentation": {"enabled": True, "warmup_epochs": -1}}, "augmentation.warmup_epochs", "-1"),
    ({"augmentation": {"enabled": True, "schedule": {"kind": "linear", "decay_epochs": 0}}},
     "augmentation.schedule.decay_epochs", "0"),
]

PATTERNS = [
    ({"source": {"urls": "shards/x-{000000..000003.tar"}}, "source.urls", "unbalanced braces"),
    ({"source": {"urls": ["shards/x-000000.tar", "y-{0..3}}.tar"]}}, "source.urls", "unbalanced braces"),
    ({"source": {"urls": ""}}, "source.urls", "no shards given"),
]

CASES = UNKNOWN_KEYS + WRONG_TYPES + PROBABILITIES + MIN_OVER_MAX + NEGATIVE_SIZES + PATTERNS


@pytest.mark.parametrize("patch, path, fragment", CASES, ids=[case[1] + ":" + case[2] for case in CASES])
def test_bad_config_is_rejected_at_load_with_the_field_path(patch, path, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(_with(patch))
    error = info.value
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    assert fragment in str(error)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"source": {"urls": "a.tar", "on_error": "skipp"}}))
    with pytest.raises(ConfigError, match=r"^source\.on_error: expected \"raise\" or \"skip\", got \"skipp\""):
        load_config(path)
    path.write_text('{"source": {"urls": "a.tar",}}')
    with pytest.raises(ConfigError, match=f"config file {path} is not valid JSON"):
        load_config(path)


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_on_error_reaches_the_source(policy):
    from pipelines import build_pipe

    pipe = build_pipe(load_config(_with({"source": {"on_error": policy}})))
    assert pipe.stages[0].on_error == policy


@pytest.mark.parametrize("batching, path", [
    ({"max_frames": 9000, "drop_last": True}, "batching.drop_last"),
    ({"batch_size": 4, "bucket_buffer": 8}, "batching.bucket_buffer"),
    ({"batch_size": 4, "max_batch_size": 8}, "batching.max_batch_size"),
    ({"drop_last": False}, "batching.drop_last"),
])
def test_batching_options_of_the_other_mode_are_refused_not_ignored(batching, path):
    with pytest.raises(ConfigError) as info:
        load_config({"source": {"urls": DEMO_URLS}, "batching": batching})
    assert info.value.path == path


def test_schedule_ramp_fields_need_a_linear_schedule():
    with pytest.raises(ConfigError) as info:
        load_config({"source": {"urls": DEMO_URLS}, "augmentation": {"schedule": {"end_factor": 0.3}}})
    assert info.value.path == "augmentation.schedule.end_factor"
