"""Real Lightning (DDP on 2 CPU processes, gloo): every key once per epoch, a new augmentation per
epoch with :class:`pipelines.lightning.SetEpoch`, and the silent repeat it prevents."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, *flags: str) -> tuple[dict[str, dict[str, str]], str]:
    config = {"seed": 1, "source": {"urls": os.path.join(REPO, "shards", "demo", "demo-{000000..000004}.tar"),
                                    "equal_steps": "drop"},
              "augmentation": {"enabled": True, "gain": {"enabled": True, "probability": 1.0}},
              "batching": {"batch_size": 2}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "lightning_job.py"), str(tmp_path / "c.json"),
                           str(tmp_path), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr[-3000:]
    epochs: dict[str, dict[str, str]] = {}
    for rank in (0, 1):
        with open(tmp_path / f"rank-{rank}.json") as f:
            for epoch, seen in json.load(f).items():
                keys = [key for key, _ in seen]
                assert not set(keys) & set(epochs.get(epoch, {})), "a key reached both ranks in one epoch"
                epochs.setdefault(epoch, {}).update(dict(seen))
                assert len(keys) == len(set(keys))
    return epochs, done.stderr


def test_lightning_ddp_with_set_epoch_sees_every_key_once_and_new_augmentations(tmp_path):
    epochs, stderr = _run(tmp_path)
    assert "again" not in stderr
    assert sorted(epochs) == ["0", "1"] and len(epochs["0"]) == len(epochs["1"]) == 24  # the demo's 24 samples
    assert sorted(epochs["0"]) == sorted(epochs["1"])
    assert all(epochs["0"][key] != epochs["1"][key] for key in epochs["0"])  # a new gain for every key


def test_without_the_callback_lightning_repeats_epoch_0(tmp_path):
    epochs, stderr = _run(tmp_path, "--no-callback")
    assert all(epochs["0"][key] == epochs["1"][key] for key in epochs["0"])  # what SetEpoch is for
    assert "RepeatedEpochWarning: this pipe is streaming epoch 0 again" in stderr  # and the pipe says so
