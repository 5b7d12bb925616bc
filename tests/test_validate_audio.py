"""``validate --protocol audio``: arms none, mel, audio and both on mel and audio shards of the same
recordings; an audio arm with no audio stage trains on exactly what its mel twin trains on."""

from __future__ import annotations

import json

import pytest
import torch

from pipelines.build import load_config
from pipelines.cli import main
from pipelines.config import AudioAugmentationConfig
from pipelines.validation.protocols import audio_arm_config, protocol_arms
from pipelines.validation.run import AUDIO_CONFIG, load_audio_block
from pipelines.validation.train import TrainSettings, training_pipe
from streams.tools.audio_pack import pack_audio

from .test_audio_pack import music, write_entry

EDL = {"segments": [[0.0, 1.5], [2.5, 4.5], [1.0, 2.0]], "crossfade": 0.01}

CONFIG = {
    "seed": 0,
    "source": {"urls": "unused"},
    "augmentation": {
        "enabled": True,
        "gain": {"enabled": True, "probability": 0.5, "domain": "db"},
        "spec_augment": {"enabled": True, "probability": 0.5, "freq_masks": 1, "freq_width": 4,
                         "time_masks": 1, "time_width": 5},
        "crop": {"enabled": True, "probability": 0.5, "min_len": 50, "max_len": 80},
    },
    "shuffle": {"buffer_size": 2},
    "batching": {"batch_size": 2},
}

AUDIO_BLOCK = {"enabled": True, "reedit": {"enabled": True, "piece_seconds": [0.5, 1.5]},
               "export": {"enabled": True, "lossy_probability": 0.0}}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, str]:
    """Four 5-second training recordings packed as mel and as audio shards, two validation ones as mel shards."""
    root = tmp_path_factory.mktemp("validate-audio")
    for i in range(6):
        split = "train" if i < 4 else "val"
        write_entry(root / "src" / split, f"k{i}", music(5.0, seed=i), EDL, meta={"recording": f"r{i}"})
    for split, store in (("train", "mel"), ("train", "audio"), ("val", "mel")):
        pack_audio(str(root / "src" / split), str(root / f"{split}-{store}" / "t-%06d.tar"), store=store,
                   max_samples=2, progress=False)
    config = root / "config.json"
    config.write_text(json.dumps(CONFIG))
    return {"train": str(root / "train-mel" / "t-{000000..000001}.tar"),
            "audio": str(root / "train-audio" / "t-{000000..000001}.tar"),
            "val": str(root / "val-mel" / "t-000000.tar"), "config": str(config), "root": str(root)}


def _config(urls: str):
    return load_config({**CONFIG, "source": {"urls": urls}})


AUDIO = AudioAugmentationConfig.from_json(AUDIO_BLOCK, "audio_augmentation")


def test_the_audio_protocol_has_four_arms_against_none_and_shares_mel_arms_with_quick(shards):
    config = _config(shards["train"])
    arms = {arm.name: arm for arm in protocol_arms("audio", config, audio_urls=shards["audio"], audio=AUDIO)}
    assert list(arms) == ["none", "mel", "audio", "both"]
    assert [arms[n].against for n in arms] == [None, "none", "none", "none"]
    quick = {arm.name: arm.config for arm in protocol_arms("quick", config)}
    assert arms["none"].config == quick["none"] and arms["mel"].config == quick["all"]  # one cache entry each
    for name, mel_on in (("audio", False), ("both", True)):
        arm = arms[name].config
        assert (arm.source.store, arm.source.urls, arm.source.mel_backend) == ("audio", shards["audio"], "librosa")
        assert arm.augment is mel_on and arm.audio_augmentation == AUDIO
    assert not arms["mel"].config.audio_augmentation.enabled and arms["mel"].config.source.store == "mel"


def test_an_audio_arm_without_audio_stages_trains_on_its_mel_twins_batches_bit_for_bit(shards):
    """librosa mels rounded to float16 are the mel shards' numbers: the arms differ by audio stages only."""
    settings = TrainSettings(steps=4, eval_every=2, window=40, context=10, batch_size=2)
    config = _config(shards["train"])
    arms = {arm.name: arm.config for arm in protocol_arms("quick", config)}
    for mel_on in (False, True):
        mel = arms["all" if mel_on else "none"]
        audio = audio_arm_config(config, shards["audio"], AudioAugmentationConfig(), mel_on)
        for epoch in (0, 1):
            pipes = [training_pipe(arm, settings, seed=5, recordings=("r0", "r1", "r3")) for arm in (mel, audio)]
            for pipe in pipes:
                pipe.set_epoch(epoch)
            batches = [list(pipe) for pipe in pipes]
            assert len(batches[0]) == len(batches[1]) >= 1
            for ours, theirs in zip(*batches):
                assert ours.raw_mel.dtype == theirs.raw_mel.dtype == torch.float32
                assert torch.equal(ours.raw_mel, theirs.raw_mel) and torch.equal(ours.edit_mel, theirs.edit_mel)
                assert torch.equal(ours.pointers, theirs.pointers) and ours.keys == theirs.keys


def test_an_audio_arm_with_reedit_trains_on_new_edits_of_the_same_recordings(shards):
    settings = TrainSettings(steps=4, eval_every=2, window=40, context=10, batch_size=2)
    audio = protocol_arms("audio", _config(shards["train"]), audio_urls=shards["audio"], audio=AUDIO)[2].config
    batches = list(training_pipe(audio, settings, seed=5, recordings=("r0", "r1", "r2", "r3")))
    assert sum(len(b.keys) for b in batches) == 4
    for batch in batches:
        assert batch.raw_mel.dtype == torch.float32 and batch.edit_mel.shape[-1] == 40
        assert all(m["augmentations"][0]["stage"] == "reedit" for m in batch.meta)


def test_the_audio_block_is_the_configs_own_else_audio_jsons(tmp_path):
    own = tmp_path / "own.json"
    own.write_text(json.dumps({**CONFIG, "audio_augmentation": AUDIO_BLOCK}))
    assert load_audio_block(str(own)) == AUDIO
    with open(AUDIO_CONFIG) as f:
        default = AudioAugmentationConfig.from_json(json.load(f)["audio_augmentation"], "audio_augmentation")
    assert load_audio_block(None) == default and default.block("reedit").enabled
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(CONFIG))
    assert load_audio_block(str(plain)) == default


def _validate(shards, out, *extra):
    return main(["validate", shards["config"], "--train", shards["train"], "--val", shards["val"], "--steps", "4",
                 "--eval-every", "2", "--patience", "4", "--holdout-frames", "40", "--holdout", "0.25", "--seeds", "2",
                 "--window", "40", "--context", "20", "--batch-size", "2", "--jobs", "1", "--workers", "0",
                 "--device", "cpu", "--out", str(out), "--no-progress", *extra])


def test_validate_protocol_audio_end_to_end(shards, tmp_path, capsys):
    assert _validate(shards, tmp_path, "--protocol", "audio", "--train-audio", shards["audio"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["arms"]) == ["none", "mel", "audio", "both"]
    assert results["train_audio"] == shards["audio"]
    assert results["audio_augmentation"]["enabled"]  # the config has none: pipelines/configs/audio.json's
    compared = {(c["arm"], c["against"]) for c in results["comparisons"] if c["metric"] == "decoded_exact"}
    assert compared == {("mel", "none"), ("audio", "none"), ("both", "none")}
    for block in results["arms"].values():
        assert [row["seed"] for row in block["per_seed"]] == [0, 1]
        assert all(0 <= row["decoded_exact"] <= 1 for row in block["per_seed"])
    assert "protocol audio, 4 arms x 2 seeds" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "audio"], "--train-audio"),
    (["--protocol", "quick", "--train-audio", "x.tar"], "only by it"),
])
def test_train_audio_goes_with_the_audio_protocol_only(shards, tmp_path, capsys, extra, message):
    assert _validate(shards, tmp_path, *extra) != 0
    assert message in capsys.readouterr().err and not (tmp_path / "results.json").exists()


def test_train_audio_of_other_recordings_is_refused_naming_both_sets(shards, tmp_path, capsys):
    other = shards["root"] + "/train-audio/t-000000.tar"  # r0 and r1 only
    assert _validate(shards, tmp_path, "--protocol", "audio", "--train-audio", other) != 0
    assert "only in --train: ['r2', 'r3']" in capsys.readouterr().err
