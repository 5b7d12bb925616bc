"""Where users tripped (issue #22): pack-audio reruns, an empty pack-audio, info on missing shards,
a closed stdout pipe, and defaults in every ``--help``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipelines.cli import main, make_parser
from streams.tools.audio_pack import pack_audio

from .test_audio_pack import music, read_back, write_entry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "shards", "demo", "demo-{000000..000004}.tar")


def _source(folder, keys: list[str]) -> None:
    for i, key in enumerate(keys):
        write_entry(folder, key, music(1.5, seed=i), {"segments": [[0.0, 1.0]]})


def test_pack_audio_refuses_an_existing_set_and_overwrite_replaces_it(tmp_path, capsys):
    src_many, src_few, out = tmp_path / "many", tmp_path / "few", tmp_path / "out"
    _source(src_many, [f"k{i}" for i in range(4)])
    _source(src_few, ["x0"])
    pattern = str(out / "train-%06d.tar")
    assert pack_audio(str(src_many), pattern, max_samples=1, progress=False).samples == 4
    with pytest.raises(ValueError, match=r"already holds shards of train-%06d.tar .*pack-audio --overwrite"):
        pack_audio(str(src_few), pattern, progress=False)
    assert main(["pack-audio", str(src_few), pattern, "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(read_back(out)) == [f"k{i}" for i in range(4)]  # the refused runs changed nothing

    assert main(["pack-audio", str(src_few), pattern, "--overwrite", "--no-progress"]) == 0
    assert sorted(os.listdir(out)) == ["index.json", "train-000000.tar"]  # old shards beyond the new count gone
    assert sorted(read_back(out)) == ["x0"]
    with open(out / "index.json") as f:
        assert list(json.load(f)["shards"]) == ["train-000000.tar"]  # replaced, not merged


def test_pack_audio_that_writes_nothing_exits_non_zero_and_leaves_the_folder(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    write_entry(src, "bad", music(1.5, seed=1), '{"segments": oops')
    _source(tmp_path / "good", ["g"])
    pattern = str(out / "train-%06d.tar")
    assert main(["pack-audio", str(tmp_path / "good"), pattern, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["pack-audio", str(src), pattern, "--on-error", "skip", "--overwrite", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "wrote no sample" in err and "nothing was written" in err
    assert sorted(read_back(out)) == ["g"]  # the old set stays: nothing replaced it


def test_pack_audio_without_edit_lists_points_to_simulate_edits(tmp_path, capsys):
    src = tmp_path / "src"
    write_entry(src, "k", music(1.5, seed=1), {"segments": [[0.0, 1.0]]})
    os.remove(src / "k.edl.json")
    assert main(["pack-audio", str(src), str(tmp_path / "out" / "t-%06d.tar"), "--on-error", "skip",
                 "--no-progress"]) == 2
    assert "simulate-edits" in capsys.readouterr().err


def test_info_exits_1_naming_missing_shards(tmp_path, capsys):
    missing = str(tmp_path / "gone-{000000..000001}.tar")
    assert main(["info", missing, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "gone-000000.tar: missing_shard" in err and "gone-000001.tar: missing_shard" in err
    assert main(["info", DEMO, "--no-progress"]) == 0


@pytest.mark.parametrize("argv", [["info", DEMO, "--json", "--no-progress"], ["--help"]])
def test_a_closed_stdout_pipe_ends_quietly(argv):
    """stdout is a pipe whose reader is gone (``| head`` after its line): no traceback, SIGPIPE's status."""
    script = ("import os, sys\n"
              "read, write = os.pipe(); os.close(read); os.dup2(write, 1)\n"
              "from pipelines.cli import main\n"
              f"sys.exit(main({argv!r}))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == (0 if argv == ["--help"] else 141)  # argparse drops a help it cannot write


def _options(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from ((name, option) for _, option in _options(command))
        elif action.option_strings:
            yield None, action


def test_every_help_shows_the_defaults():
    parser = make_parser()
    shown = 0
    for command, action in _options(parser):
        if any(action.default is nothing for nothing in (None, False)) or action.default == "==SUPPRESS==":
            continue
        assert "default" in (action.help or ""), (command, action.option_strings)
        shown += 1
    assert shown > 30
    text = subprocess.run([sys.executable, "-m", "pipelines", "pack-audio", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO}).stdout
    assert "(default: 1024)" in text
    assert "(default: 0.0)" in text  # a zero default is shown too


def _zero_tail_shard(tmp_path, keep: int) -> str:
    """A demo shard whose members after the ``keep``-th sample were zeroed in place, file size
    unchanged: a download cut short into a pre-allocated file."""
    import tarfile

    source = os.path.join(REPO, "shards", "demo", "demo-000000.tar")
    with tarfile.open(source) as archive:
        members = archive.getmembers()
    keys = sorted({m.name.split(".")[0] for m in members})
    cut = next(m.offset for m in members if m.name.split(".")[0] == keys[keep])
    with open(source, "rb") as f:
        data = bytearray(f.read())
    data[cut:] = bytes(len(data) - cut)
    path = tmp_path / "cut" / "demo-000000.tar"
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    return str(path)


def test_a_zero_tail_without_index_is_a_truncated_shard(tmp_path, capsys):
    path = _zero_tail_shard(tmp_path, keep=2)
    assert not os.path.exists(os.path.join(os.path.dirname(path), "index.json"))
    assert main(["check", path, "--no-progress"]) == 1
    out = capsys.readouterr()
    assert "truncated_shard" in out.out + out.err and "pre-allocated" in out.out + out.err
    assert main(["info", path, "--no-progress"]) == 1  # the samples before the cut still counted


def test_tar_padding_is_not_a_zero_tail(tmp_path):
    """A shard written by tarfile (padding to a 10240-byte record) and one padded by 64 KiB more read clean."""
    from streams import Pipe

    source = os.path.join(REPO, "shards", "demo", "demo-000000.tar")
    padded = tmp_path / "padded-000000.tar"
    with open(source, "rb") as f:
        padded.write_bytes(f.read() + bytes(1 << 16))
    assert len(list(Pipe.from_shards(str(padded), shuffle_shards=False))) == len(
        list(Pipe.from_shards(source, shuffle_shards=False)))


def test_a_second_pass_at_one_epoch_with_augmentation_warns(tmp_path):
    import warnings

    from torch.utils.data import DataLoader

    from streams import Pipe
    from streams.pipe import RepeatedEpochWarning

    pipe = Pipe.from_shards(DEMO, seed=0).gain(probability=1.0)
    list(pipe)
    with pytest.warns(RepeatedEpochWarning, match=r"streaming epoch 0 again .*pipe.set_epoch"):
        list(pipe)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepeatedEpochWarning)
        pipe.set_epoch(1)
        list(pipe)
        list(Pipe.from_shards(DEMO, seed=0))  # no augmentation: nothing repeats that matters
        list(Pipe.from_shards(DEMO, seed=0))
    fresh = Pipe.from_shards(DEMO, seed=0).gain(probability=1.0)
    fresh.set_epoch(3)
    list(DataLoader(fresh, batch_size=None, num_workers=1))  # a fresh worker records its pass in shared memory
    assert int(fresh._pass_epochs[0]) == 3
