"""The command line: run, pack, check, generate, preview, as a user calls them."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipelines.cli import main
from streams import Pipe
from streams.tools.synthetic import synthetic_sample

from .conftest import DEMO_SAMPLES, REPO

CONFIGS = os.path.join(REPO, "pipelines", "configs")


def test_run_streams_the_mini_config_and_summarises(capsys):
    assert main(["run", os.path.join(CONFIGS, "mini.json"), "--no-progress", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"samples {2 * DEMO_SAMPLES}" in out
    assert "padding efficiency" in out
    assert "augmentations applied: " in out and "crop" in out


def test_run_as_a_module_with_workers_shows_progress():
    result = subprocess.run([sys.executable, "-m", "pipelines", "run", os.path.join(CONFIGS, "full.json"),
                             "--workers", "2"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"samples {DEMO_SAMPLES}" in result.stdout
    assert "sample/s" in result.stderr  # the tqdm bar with its rate


def _write_npy_sample(folder, key, sample):
    np.save(folder / f"{key}.raw_mel.npy", sample.raw_mel.numpy())
    np.save(folder / f"{key}.edit_mel.npy", sample.edit_mel.numpy())
    np.save(folder / f"{key}.pointers.npy", sample.pointers.numpy().astype(np.int32))


def test_pack_npy_triplets_and_pt_files_round_trip(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    samples = [synthetic_sample(f"s{i}", n_mels=6, raw_frames=50 + i, seed=i) for i in range(5)]
    for sample in samples[:3]:
        _write_npy_sample(src, sample.key, sample)
    (src / "s0.meta.json").write_text('{"speaker": "a"}')
    for sample in samples[3:]:
        torch.save({"raw_mel": sample.raw_mel, "edit_mel": sample.edit_mel, "pointers": sample.pointers,
                    "meta": {"pt": True}}, src / f"{sample.key}.pt")
    (src / "README").write_text("not a sample")
    out = tmp_path / "out"
    assert main(["pack", str(src), str(out / "packed-%06d.tar"), "--max-samples", "2"]) == 0
    assert "5 samples into 3 shard(s)" in capsys.readouterr().out
    read = {s.key: s for s in Pipe.from_shards(str(out / "packed-{000000..000002}.tar"))}
    assert sorted(read) == [s.key for s in samples]
    for sample in samples:
        assert torch.equal(read[sample.key].raw_mel, sample.raw_mel)
        assert torch.equal(read[sample.key].pointers, sample.pointers)
    assert read["s0"].meta == {"speaker": "a"} and read["s4"].meta == {"pt": True}
    # .npy members are packed byte for byte
    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(out / "packed-000000.tar"), "-C", str(extracted)], check=True)
    assert filecmp.cmp(extracted / "s0.raw_mel.npy", src / "s0.raw_mel.npy", shallow=False)


def test_pack_refuses_bad_samples_unless_told_to_skip(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    good = synthetic_sample("good", n_mels=4, raw_frames=30)
    _write_npy_sample(src, "good", good)
    bad = good.replace(pointers=good.pointers + 1000)
    _write_npy_sample(src, "bad", bad)
    assert main(["pack", str(src), str(tmp_path / "o1" / "x-%06d.tar")]) == 1
    err = capsys.readouterr().err
    assert "'bad'" in err and "pointers" in err and "nothing written" in err
    assert not (tmp_path / "o1").exists()
    assert main(["pack", str(src), str(tmp_path / "o2" / "x-%06d.tar"), "--skip-bad"]) == 0
    assert [s.key for s in Pipe.from_shards(str(tmp_path / "o2" / "x-000000.tar"))] == ["good"]


def test_check_passes_the_demo_shards_and_fails_a_bad_one(tmp_path, capsys):
    assert main(["check", os.path.join(REPO, "shards", "demo", "demo-{000000..000004}.tar")]) == 0
    assert f"{DEMO_SAMPLES} sample(s) read, 0 problem(s)" in capsys.readouterr().out
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"this is not a tar file" * 100)
    assert main(["check", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and str(broken) in out


def test_generate_reproduces_the_demo_shards_byte_for_byte(tmp_path):
    assert main(["generate", str(tmp_path / "demo-%06d.tar"), "--count", "24", "--n-mels", "40",
                 "--min-frames", "800", "--max-frames", "2200", "--max-samples", "5", "--prefix", "demo",
                 "--pointer-dtype", "int32", "--dtype", "float16", "--seed", "0"]) == 0
    for i in range(5):
        name = f"demo-{i:06d}.tar"
        assert filecmp.cmp(tmp_path / name, os.path.join(REPO, "shards", "demo", name), shallow=False), name


def test_preview_writes_pngs(tmp_path, capsys):
    assert main(["preview", os.path.join(CONFIGS, "full.json"), "--out", str(tmp_path)]) == 0
    pngs = [p for p in os.listdir(tmp_path) if p.endswith(".png")]
    assert len(pngs) >= 6
    assert all(os.path.getsize(tmp_path / p) > 1000 for p in pngs)


@pytest.mark.parametrize("argv, message", [
    (["run", "nope.json"], "does not exist"),
    (["pack", "no-such-dir", "x-%06d.tar"], "not a folder"),
])
def test_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
