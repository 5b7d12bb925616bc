"""Real accelerate on 2 CPU processes (torchrun, gloo): with the pipe's DataLoader kept out of
``accelerator.prepare`` (docs/frameworks.md), every key arrives once per epoch; handing the loader to
``prepare`` fails loudly on the first batch instead of losing samples quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    config = {"seed": 1, "source": {"urls": os.path.join(REPO, "shards", "demo", "demo-{000000..000004}.tar"),
                                    "equal_steps": "drop"},
              "augmentation": {"enabled": True, "gain": {"enabled": True, "probability": 1.0}}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           os.path.join(REPO, "tests", "accelerate_job.py"), str(tmp_path / "c.json"), str(tmp_path),
                           *flags], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"})


def test_accelerate_without_preparing_the_loader_sees_every_key_once_with_new_augmentations(tmp_path):
    done = _launch(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    records = {}
    for epoch in ("0", "1"):
        keys = [key for rank in ranks for key, _ in rank[epoch]]
        assert len(keys) == len(set(keys)) == 24  # once per epoch, no key on both ranks
        records[epoch] = {key: record for rank in ranks for key, record in rank[epoch]}
    assert all(records["0"][key] != records["1"][key] for key in records["0"])  # a new gain every epoch


def test_preparing_the_loader_fails_on_the_first_batch_not_quietly(tmp_path):
    done = _launch(tmp_path, "--prepare-loader")
    assert done.returncode != 0
    assert "Can only concatenate tensors but got <class 'streams.stages.collate.Batch'>" in done.stderr
