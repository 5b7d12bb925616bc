"""Audio shards (``pack-audio --store audio``) read end to end: the same mels as mel shards, both
mel backends, check and info, and the audio path (re-edit, export, the plan's stages) under
DataLoader workers with exact resume."""

from __future__ import annotations

import os

import pytest
import torch

from pipelines.build import build_pipe, load_config
from pipelines.cli import main
from streams import Pipe
from streams.tools.audio_pack import pack_audio

from .resume_harness import full_run, interrupted_run, same
from .test_audio_pack import music, write_entry

EDL = {"segments": [[0.0, 2.0], [3.0, 5.5], [1.0, 2.5]], "crossfade": 0.01}


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, str]:
    """Four 6-second recordings packed twice: as audio shards and as float32 mel shards."""
    root = tmp_path_factory.mktemp("audio-shards")
    for i in range(4):
        write_entry(root / "src", f"k{i}", music(6.0, seed=i), EDL, meta={"recording": f"r{i}"})
    pack_audio(str(root / "src"), str(root / "audio" / "t-%06d.tar"), store="audio", max_samples=2, progress=False)
    pack_audio(str(root / "src"), str(root / "mel" / "t-%06d.tar"), store="mel", max_samples=2, dtype="float32",
               progress=False)
    return {"audio": str(root / "audio" / "t-{000000..000001}.tar"),
            "mel": str(root / "mel" / "t-{000000..000001}.tar"), "root": str(root)}


def test_mels_made_when_read_equal_pack_audios_mels(packed):
    read = {s.key: s for s in Pipe.from_audio_shards(packed["audio"], shuffle_shards=False).mels()}
    stored = {s.key: s for s in Pipe.from_shards(packed["mel"], shuffle_shards=False)}
    assert sorted(read) == sorted(stored) == ["k0", "k1", "k2", "k3"]
    for key, sample in stored.items():
        torch.testing.assert_close(read[key].raw_mel, sample.raw_mel, rtol=0, atol=0)
        torch.testing.assert_close(read[key].edit_mel, sample.edit_mel, rtol=0, atol=0)
        assert torch.equal(read[key].pointers, sample.pointers)


def test_torch_stft_mels_match_librosa_within_a_hundredth_of_a_db(packed):
    librosa = {s.key: s for s in Pipe.from_audio_shards(packed["audio"], shuffle_shards=False).mels()}
    torch_mels = {s.key: s for s in Pipe.from_audio_shards(packed["audio"], shuffle_shards=False).mels(backend="torch")}
    for key, sample in librosa.items():
        # dB mels spanning about 90 dB; single- against double-precision STFTs differ by < 0.01 dB
        assert (torch_mels[key].raw_mel - sample.raw_mel).abs().max() < 0.01
        assert (torch_mels[key].edit_mel - sample.edit_mel).abs().max() < 0.01


def test_check_and_info_read_audio_shards(packed, capsys):
    assert main(["check", packed["audio"], "--no-progress"]) == 0
    assert "4 sample(s) read, 0 problem(s)" in capsys.readouterr().out
    assert main(["info", packed["audio"], "--no-progress"]) == 0
    assert "4 good sample(s)" in capsys.readouterr().out


def _config(urls: str) -> dict:
    return {
        "seed": 3,
        "source": {"urls": urls, "store": "audio"},
        "audio_augmentation": {"enabled": True,
                               "reedit": {"enabled": True, "piece_seconds": [0.5, 1.5]},
                               "export": {"enabled": True, "lossy_probability": 0.0}},
        "augmentation": {"enabled": True,
                         "crop": {"enabled": True, "probability": 1.0, "min_len": 100, "max_len": 200},
                         "spec_augment": {"enabled": True, "probability": 1.0, "time_width": 10},
                         "gain": {"enabled": True, "probability": 0.5}},
        "shuffle": {"buffer_size": 3},
        "batching": {"batch_size": 2},
    }


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_the_audio_path_gives_each_key_the_same_sample_for_0_and_2_workers(packed):
    """Stage randomness is keyed by (seed, epoch, stage, key): the worker count changes the order only."""
    config = load_config({**_config(packed["audio"]), "shuffle": {"buffer_size": 0}, "batching": {}})

    def by_key(num_workers: int) -> dict:
        return {r[1]: r for r in full_run(lambda: build_pipe(config), num_workers=num_workers, epoch=1)}

    alone = by_key(0)
    assert sorted(alone) == ["k0", "k1", "k2", "k3"]
    two = by_key(2)
    assert all(same([two[key]], [alone[key]]) for key in alone)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_the_audio_path_resumes_exactly_under_stateful_dataloader(packed):
    config = load_config(_config(packed["audio"]))

    def make_pipe():
        return build_pipe(config)

    whole = full_run(make_pipe, num_workers=2, epoch=1)
    assert sum(len(r[1]) for r in whole) == 4
    assert same(interrupted_run(make_pipe, [1], num_workers=2, epoch=1), whole)
    assert not same(full_run(make_pipe, num_workers=2, epoch=2), whole)  # a new re-edit and export each epoch


def test_a_new_edit_each_epoch_keeps_pointers_inside_the_recording(packed):
    config = load_config({**_config(packed["audio"]), "augmentation": {"enabled": False}, "batching": {},
                          "shuffle": {"buffer_size": 0}})
    pipe = build_pipe(config)
    lengths = set()
    for epoch in range(3):
        pipe.set_epoch(epoch)
        for sample in pipe:
            assert 0 <= int(sample.pointers.min()) and int(sample.pointers.max()) < sample.raw_mel.shape[1]
            stages = [a["stage"] for a in sample.meta["augmentations"]]
            assert stages[:2] == ["reedit", "export"]
            lengths.add((sample.key, sample.edit_mel.shape[1]))
    assert len(lengths) > 4  # edits differ between epochs


def test_audio_stages_on_mel_shards_are_refused_naming_the_field(packed):
    bad = _config(packed["mel"])
    bad["source"]["store"] = "mel"
    with pytest.raises(Exception, match=r"audio_augmentation.enabled.*source.store"):
        load_config(bad)
    assert os.path.isdir(packed["root"])


def test_the_bundled_audio_config_runs_on_the_demo_audio_shards():
    """``pipelines/configs/audio.json`` over ``shards/demo-audio`` (made by scripts/make_demo_audio.py)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pipe = build_pipe(load_config(os.path.join(repo, "pipelines", "configs", "audio.json")))
    keys = [key for batch in pipe for key in batch.keys]
    assert len(keys) == len(set(keys)) == 4
