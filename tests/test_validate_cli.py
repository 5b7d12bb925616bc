"""``python -m pipelines validate`` end to end on tiny shards made here, and the training pipe."""

import dataclasses
import json

import pytest
import torch

from pipelines.build import load_config
from pipelines.cli import main, make_parser
from pipelines.validation import run as validation_run
from pipelines.validation.evaluate import PENALTY_GRID
from pipelines.validation.protocols import protocol_arms
from pipelines.validation.report import at_grid_top
from pipelines.validation.train import RunSpec, TrainSettings, training_pipe
from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import synthetic_sample

CONFIG = {
    "seed": 0,
    "source": {"urls": "unused"},
    "augmentation": {
        "enabled": True,
        "noise": {"enabled": True, "probability": 0.5, "level_min": 0.05, "level_max": 0.15},
        "gain": {"enabled": True, "probability": 0.5, "domain": "log"},
        "spec_augment": {"enabled": True, "probability": 0.5, "freq_masks": 1, "freq_width": 2,
                         "time_masks": 1, "time_width": 5},
        "crop": {"enabled": True, "probability": 0.5, "min_len": 50, "max_len": 80, "context": 4},
        "chunk_shuffle": {"enabled": True, "probability": 0.5, "chunk_size": 100},
    },
    "shuffle": {"buffer_size": 4},
    "batching": {"batch_size": 4},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    for split, count, seed in (("train", 8, 0), ("val", 2, 1)):
        (root / split).mkdir()
        samples = []
        for i in range(count):
            sample = synthetic_sample(f"{split}-{i}", seed=seed, n_mels=8, raw_frames=90 + 7 * i)
            samples.append(sample.replace(meta={**sample.meta, "recording": f"{split}-rec{i // 2}"}))
        write_shards(samples, str(root / split / f"{split}-%06d.tar"), max_samples=4)
    config = root / "config.json"
    config.write_text(json.dumps(CONFIG))
    return {"config": str(config), "train": str(root / "train" / "train-{000000..000001}.tar"),
            "val": str(root / "val" / "val-000000.tar"), "root": root}


DECODED = ("exact", "within_2", "argmax_cut_f1", "decoded_exact", "decoded_within_2", "cut_f1", "cut_f1_5")


def _validate(tiny, out, *extra):
    return main(["validate", tiny["config"], "--train", tiny["train"], "--val", tiny["val"], "--steps", "6",
                 "--eval-every", "2", "--patience", "4", "--holdout-frames", "40", "--conditions",
                 "stored,like_training,unlike_training", "--seeds", "2", "--window", "30", "--batch-size", "2",
                 "--jobs", "1",
                 "--workers", "0", "--device", "cpu", "--out", str(out), "--no-progress", *extra])


def test_quick_writes_results_plot_and_table(tiny, tmp_path, capsys):
    assert _validate(tiny, tmp_path) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["arms"]) == {"none", "all"}
    for block in results["arms"].values():
        assert [s["seed"] for s in block["per_seed"]] == [0, 1]
        for row in block["per_seed"]:
            assert set(DECODED) <= set(row) and 0 <= row["exact"] <= 1 and 0 <= row["decoded_exact"] <= 1
            assert row["penalty"] in PENALTY_GRID and row["stopped_by"] in ("plateau", "cap")
            assert 0 <= row["best_step"] <= row["steps"] <= 6
        assert set(block["exact"]) == {"mean", "std"} and set(block["cut_f1"]) == {"mean", "std"}
        assert set(block["conditions"]) == {"stored", "like_training", "unlike_training"}
        assert len(block["curves"]["loss"][0]) == block["per_seed"][0]["steps"]
        assert [step for step, _ in block["curves"]["holdout"][0]][:2] == [0, 2]  # untrained, then every 2 steps
        assert [step for step, _ in block["curves"]["holdout_loss"][0]] == [s for s, _ in block["curves"]["holdout"][0]]
    assert isinstance(results["penalty_at_grid_top"], list)
    baseline = results["baselines"]["nearest_neighbour"]
    assert set(DECODED) <= set(baseline) and baseline["penalty"] in PENALTY_GRID
    assert [p for p, _ in baseline["penalty_grid"]] == list(PENALTY_GRID)
    assert results["val_edit_frames"] == sum(90 + 7 * i for i in range(2))  # whole recordings scored
    first = results["comparisons"][0]
    assert (first["arm"], first["against"], first["metric"]) == ("all", "none", "decoded_exact")
    assert len(first["ci95"]) == 2 and first["verdict"] in ("helps", "hurts", "unresolved")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| all | none | exact | stored |" in printed and (tmp_path / "summary.md").read_text() in printed


def test_penalties_at_the_grid_top_are_named():
    def results(grid, arm_penalties, nn_penalty):
        return {"settings": {"penalties": grid}, "baselines": {"nearest_neighbour": {"penalty": nn_penalty}},
                "arms": {"all": {"per_seed": [{"seed": i, "penalty": p} for i, p in enumerate(arm_penalties)]}}}

    assert at_grid_top(results([4, 16, 256], [256, 16], 256)) == ["all seed 0", "nearest neighbour"]
    assert at_grid_top(results([4, 16, 256], [16, 4], 16)) == []
    assert at_grid_top(results([64], [64], 64)) == []  # one penalty: nothing was chosen


def test_cache_reuses_finished_runs(tiny, tmp_path):
    cache = tmp_path / "cache"
    assert _validate(tiny, tmp_path / "a", "--seeds", "1", "--cache", str(cache)) == 0
    assert _validate(tiny, tmp_path / "b", "--seeds", "1", "--cache", str(cache), "--jobs", "2") == 0  # none to spawn
    first, second = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert (first["runs_trained"], second["runs_trained"], second["runs_from_cache"]) == (2, 0, 2)
    assert second["arms"]["all"]["per_seed"] == first["arms"]["all"]["per_seed"]


def test_cache_is_not_read_across_instrument_revisions(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert _validate(tiny, tmp_path / "a", "--seeds", "1", "--cache", str(cache)) == 0
    monkeypatch.setattr(validation_run, "INSTRUMENT_REVISION", validation_run.INSTRUMENT_REVISION + 1)
    assert _validate(tiny, tmp_path / "b", "--seeds", "1", "--cache", str(cache)) == 0
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (second["runs_trained"], second["runs_from_cache"]) == (2, 0)


def _spec(arm, config, conditions=("stored",)):
    settings = TrainSettings(steps=6, eval_every=2, conditions=conditions)
    return RunSpec(arm.name, 0, arm.config, settings, "val.tar", config, ("a", "b"), ("c",))


def test_cache_key_ignores_what_an_arm_does_not_run(tiny):
    config = load_config({**CONFIG, "source": {"urls": tiny["train"]}})
    variant = load_config({**CONFIG, "source": {"urls": tiny["train"]}, "augmentation": {
        **CONFIG["augmentation"], "noise": {**CONFIG["augmentation"]["noise"], "level_max": 0.1}}})
    (none, every), (variant_none, variant_all) = protocol_arms("quick", config), protocol_arms("quick", variant)
    key = validation_run.run_key
    assert key(_spec(none, config)) == key(_spec(variant_none, variant))  # none of a variant is trained once
    assert key(_spec(every, config)) != key(_spec(variant_all, variant))
    assert key(_spec(none, config)) != key(_spec(every, config))
    # like_training perturbs validation with the reference's augmentations: then the reference counts
    like = ("stored", "like_training")
    assert key(_spec(none, config, like)) != key(_spec(variant_none, variant, like))
    # a block switched off keeps no say; the flat switch and augmentation.enabled are one thing
    quiet = dataclasses.replace(config, augmentation=dataclasses.replace(
        config.augmentation, noise=dataclasses.replace(config.augmentation.noise, enabled=False, level_max=0.9)))
    assert validation_run.as_run(quiet) == validation_run.as_run(protocol_arms("ablation", config)[2].config)
    flat = dataclasses.replace(config, augmentation_enabled=True,
                               augmentation=dataclasses.replace(config.augmentation, enabled=False))
    assert validation_run.as_run(flat) == validation_run.as_run(config)


def test_cache_key_names_the_model_size(tiny, monkeypatch):
    """``small`` was d=64 until revision 3: a size redefined under its name must not read old runs."""
    config = load_config({**CONFIG, "source": {"urls": tiny["train"]}})
    spec = _spec(protocol_arms("quick", config)[0], config)
    before = validation_run.run_key(spec)
    monkeypatch.setattr(validation_run.ModelSize, "small", classmethod(lambda cls: cls(d=64)))
    assert validation_run.run_key(spec) != before


def test_command_line_defaults_are_the_settings_defaults():
    """One set of defaults: ``validate`` without flags trains as ``TrainSettings()`` does."""
    args = make_parser().parse_args(["validate", "--train", "t.tar", "--val", "v.tar"])
    defaults = TrainSettings()
    flags = {"steps": "steps", "eval_every": "eval_every", "patience": "patience", "window": "window",
             "context": "context", "batch_size": "batch_size", "learning_rate": "lr", "model": "model",
             "holdout": "holdout", "holdout_frames": "holdout_frames", "chunk_frames": "chunk_frames"}
    assert tuple(args.conditions.split(",")) == defaults.conditions
    assert {field: getattr(args, flag) for field, flag in flags.items()} == {
        field: getattr(defaults, field) for field in flags}
    assert tuple(float(p) for p in args.penalties.split(",")) == defaults.penalties
    assert tuple(float(w) for w in args.baseline_weights.split(",")) == defaults.baseline_weights


def test_ablation_and_multiplier_arms(tiny, tmp_path):
    config = load_config({**CONFIG, "source": {"urls": tiny["train"]}})
    names = [arm.name for arm in protocol_arms("ablation", config)]
    assert names == ["none", "all", "without_noise", "without_gain", "without_spec_augment", "without_crop",
                     "without_chunk_shuffle"]
    assert _validate(tiny, tmp_path, "--protocol", "multiplier") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["arms"]) == {"none@1", "none@2", "none@3", "all@1", "all@2"}
    assert results["arms"]["none@2"]["recordings"] == 2
    assert {m["arm"] for m in results["multiplier"]} == {"all@1", "all@2"}


def test_arms_share_data_order_and_window(tiny):
    config = load_config({**CONFIG, "source": {"urls": tiny["train"]}})
    none, everything = (arm.config for arm in protocol_arms("quick", config))
    settings = TrainSettings(window=30, batch_size=2)
    batches = {name: list(training_pipe(cfg, settings, seed=3)) for name, cfg in (("none", none), ("all", everything))}
    assert [b.keys for b in batches["none"]] == [b.keys for b in batches["all"]]
    for name, stream in batches.items():
        assert all(int(length) == 30 for b in stream for length in b.edit_lengths), name
    # without crop the window sits at a fixed position: the same in every epoch
    pipe = training_pipe(none, settings, seed=3)
    pipe.set_epoch(1)
    later = {key: b for b in pipe for key in b.keys}
    first = batches["none"][0]
    again = later[first.keys[0]]
    index = again.keys.index(first.keys[0])
    assert torch.equal(first.edit_mel[0], again.edit_mel[index])


def test_bad_arguments_are_named(tiny, tmp_path, capsys):
    assert _validate(tiny, tmp_path, "--seeds", "0") == 2
    assert "--seeds" in capsys.readouterr().err
    off = tmp_path / "off.json"
    off.write_text(json.dumps({**CONFIG, "augmentation": {"enabled": False}}))
    assert main(["validate", str(off), "--train", tiny["train"], "--val", tiny["val"], "--no-progress"]) == 2
    assert "nothing to compare" in capsys.readouterr().err
