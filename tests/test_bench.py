"""The benchmark: its quick mode runs every part and reports (speed is never asserted), its settings
reject bad values, and its baseline does the plan's work (pointers still point at their content)."""

from __future__ import annotations

import json
import math
import os
import random

import pytest
import torch

from pipelines.bench import AUDIO_PATHS, E2E_KINDS, PARTS, STAGE_ROWS, BenchSettings, StageShape, bench_sample
from pipelines.bench.data import write_audio_source
from pipelines.bench.peers import LOOPS
from pipelines.bench.reference import REFERENCE_AUGMENTATIONS, concatenate_samples, reference_augment
from pipelines.bench.run import run_benchmarks
from pipelines.cli import main
from streams.tools.invariants import make_tagged_sample


def test_quick_bench_runs_every_part_and_writes_the_figures(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--no-progress", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    for heading in ("Per stage", "Against the plan's reference code", "Against what a user would write instead",
                    "End to end", "Memory", "Time to first batch", "Audio shards", "Targets"):
        assert heading in out
    assert f"figures written to {path}" in out

    result = json.loads(path.read_text())
    settings = BenchSettings.quick()
    shapes = [shape.label for shape in settings.stage_shapes]
    assert [(row["shape"], row["stage"]) for row in result["stage"]] == [
        (shape, row) for shape in shapes for row in STAGE_ROWS]
    for row in result["stage"]:
        assert row["ms"]["median"] > 0 and row["floor_ms"]["median"] > 0 and row["ratio"]["median"] > 0
    for row in result["reference"]:  # the plan's code fails on the tiny shapes' edges: reported, not raised
        assert (row["speedup"] is None) == (row["reference_ms"] is None) == (row["reference_error"] is not None)
    assert any(row["speedup"] is not None for row in result["reference"])
    peers = result["peers"]
    assert [row["loop"] for row in peers["rows"]] == list(LOOPS)
    assert all(row["ms"]["median"] > 0 for row in peers["rows"]) and peers["samples"] == settings.e2e_samples
    assert [ratio["theirs"] for ratio in peers["ratios"]] == ["webdataset", "webdataset + plan"]
    assert [row["workers"] for row in result["e2e"]["rows"]] == list(settings.workers)
    for row in result["e2e"]["rows"]:
        assert set(row["kinds"]) == set(E2E_KINDS) and all(k["samples_per_s"] > 0 for k in row["kinds"].values())
    assert set(result["e2e"]["in_process"]["full"]) == {str(w) for w in settings.workers}
    memory = result["memory"]
    assert len(memory["epoch_end_mb"]) == settings.memory_epochs
    assert memory["peak_mb"] >= memory["baseline_mb"] > 0
    assert memory["buffered_items"] >= 1 and memory["buffered_mb"] > 0
    assert [row["workers"] for row in result["first_batch"]["rows"]] == list(settings.first_batch_workers)
    assert [row["path"] for row in result["audio"]["rows"]] == list(AUDIO_PATHS)
    assert {target["part"] for target in result["targets"]} == {"stage", "reference", "peers", "e2e", "memory"}
    assert all(target["met"] in (True, False, None) for target in result["targets"])


@pytest.mark.parametrize("options, message", [
    ({"parts": "stage,speed"}, "parts must be a non-empty selection of stage, reference, peers, e2e, memory, "
                               "first-batch, audio (stage, speed given)"),
    ({"mel_dtype": "int8"}, "mel_dtype must be one of 'float32', 'float16' ('int8' given)"),
    ({"repeats": 0}, "repeats must be an int >= 1 (0 given)"),
    ({"pair_buffer": 1}, "pair_buffer must be an int >= 2 (1 given)"),
    ({"workers": "0,two"}, "workers must be comma-separated integers like 0,1,2 ('0,two' given)"),
    ({"stage_shapes": "128x"}, "stage shape must look like 128x30000x20000"),
    ({"stage_shapes": "128x0x10"}, "stage shape raw_frames must be an int >= 1 (0 given)"),
    ({"e2e_min_frames": 500, "e2e_max_frames": 100}, "e2e_max_frames must be >= e2e_min_frames (100 < 500)"),
    ({"audio_recordings": 0}, "audio_recordings must be an int >= 1 (0 given)"),
    ({"audio_epochs": 0}, "audio_epochs must be an int >= 1 (0 given)"),
    ({"audio_seconds": 0.5}, "audio_seconds must be a number >= 1.0 (0.5 given)"),
    ({"audio_seconds": float("nan")}, "audio_seconds must be a number >= 1.0 (nan given)"),
    ({"audio_src": "/no/such/folder"}, "audio_src must be a simulate-edits folder (recordings + EDLs) "
                                       "('/no/such/folder' given: no such folder)"),
])
def test_bad_settings_are_refused_naming_the_field(options, message):
    with pytest.raises(ValueError) as caught:
        BenchSettings.from_options(**options)
    assert message in str(caught.value)


def _check_audio_rows(audio: dict, recordings: int) -> None:
    assert audio["recordings"] == recordings == len(audio["recording_seconds"]) and audio["epochs"] == 1
    assert [row["path"] for row in audio["rows"]] == list(AUDIO_PATHS)
    assert audio["rows"][0]["ratio"]["median"] == 1.0  # the mel-shard floor against itself
    for row in audio["rows"]:
        for figure in (row["samples_per_s"], row["realtime"], row["ratio"]["median"], row["ratio"]["min"]):
            assert math.isfinite(figure) and figure > 0
        assert row["realtime"] == pytest.approx(row["samples_per_s"] * sum(audio["recording_seconds"]) / recordings)


def test_audio_part_on_synthesised_recordings_reports_every_path(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--parts", "audio", "--audio-recordings", "2", "--audio-seconds", "3", "--audio-epochs",
                 "1", "--no-progress", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Audio shards: 2 recordings (synthesised) of 3, 3 s" in out
    assert all(name in out for name in AUDIO_PATHS)
    result = json.loads(path.read_text())
    assert set(result) >= {"audio", "settings"} and "e2e" not in result
    assert result["audio"]["synthetic"] and result["audio"]["recording_seconds"] == [3.0, 3.0]
    _check_audio_rows(result["audio"], 2)


def test_audio_part_reads_the_first_recordings_of_audio_src(tmp_path):
    src = write_audio_source(str(tmp_path / "made"), BenchSettings(audio_recordings=2, audio_seconds=2.0,
                                                                   progress=False))
    settings = BenchSettings(parts=("audio",), audio_src=src, audio_recordings=1, audio_epochs=1, progress=False,
                             shard_dir=str(tmp_path / "bench"))
    audio = run_benchmarks(settings).to_json()["audio"]
    assert audio["source"] == src and not audio["synthetic"]
    _check_audio_rows(audio, 1)
    assert sorted(os.listdir(tmp_path / "bench" / "audio" / "src")) == sorted(
        name for name in os.listdir(src) if name.startswith("bench-000."))


def test_bench_cli_reports_a_bad_part_and_exits_2(capsys):
    assert main(["bench", "--parts", "stages", "--no-progress", "--json", ""]) == 2
    assert "bench: parts must be a non-empty selection" in capsys.readouterr().err


def test_settings_from_options_parse_lists_and_keep_defaults():
    settings = BenchSettings.from_options(parts="stage, e2e", workers="1,2", stage_shapes="8x300,4x100x50",
                                          repeats=None)
    assert settings.parts == ("stage", "e2e")
    assert settings.workers == (1, 2)
    assert settings.stage_shapes == (StageShape(8, 300, 200), StageShape(4, 100, 50))
    assert settings.repeats == BenchSettings().repeats
    assert set(PARTS) == set(BenchSettings().parts)


def test_bench_sample_has_the_requested_shape_and_valid_pointers():
    sample = bench_sample("s", StageShape(6, 250, 400), seed=3)
    assert sample.raw_mel.shape == (6, 250) and sample.edit_mel.shape == (6, 400) and sample.pointers.shape == (400,)
    assert int(sample.pointers.min()) >= 0 and int(sample.pointers.max()) < 250


@pytest.mark.parametrize("block", sorted(REFERENCE_AUGMENTATIONS))
def test_reference_baseline_does_the_plans_work(block):
    generator = torch.Generator().manual_seed(1)
    pointers = torch.randint(0, 3000, (2000,), generator=generator)
    sample = make_tagged_sample("s", 32, 3000, pointers, generator=generator)
    raw, edit, new_pointers = reference_augment(block, sample.raw_mel, sample.edit_mel, sample.pointers,
                                                random.Random(0), torch.Generator().manual_seed(0))
    assert raw.shape[0] == edit.shape[0] == 32 and edit.shape[1] == new_pointers.shape[0]
    assert int(new_pointers.min()) >= 0 and int(new_pointers.max()) < raw.shape[1]
    if block in ("crop", "chunk_shuffle"):  # pointer-aware: every edit frame still finds its raw frame
        assert torch.equal(raw[:, new_pointers], edit)
    if block == "chunk_shuffle":
        assert not torch.equal(raw, sample.raw_mel)  # it really moved the chunks
    if block in ("noise", "gain", "channel_dropout", "spec_augment"):
        assert not torch.equal(raw, sample.raw_mel) and torch.equal(new_pointers, sample.pointers)
    assert torch.equal(sample.edit_mel, sample.raw_mel[:, sample.pointers])  # inputs untouched


def test_reference_concatenation_shifts_the_second_samples_pointers():
    a = make_tagged_sample("a", 4, 30, torch.tensor([3, 29]))
    b = make_tagged_sample("b", 4, 20, torch.tensor([0, 19, 5]))
    raw, edit, pointers = concatenate_samples((a.raw_mel, a.edit_mel, a.pointers), (b.raw_mel, b.edit_mel, b.pointers))
    assert pointers.tolist() == [3, 29, 30, 49, 35]
    assert torch.equal(raw[:, pointers], edit)


def test_reference_refuses_an_unknown_block():
    with pytest.raises(ValueError, match="no reference for augmentation 'reverb'"):
        reference_augment("reverb", torch.zeros(1, 2), torch.zeros(1, 1), torch.tensor([0]), random.Random(0),
                          torch.Generator())
