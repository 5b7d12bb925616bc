"""The CLI as a newcomer meets it: plain-text help ending in an example, ``info`` on the demo shards,
and preview titles that fit plus the overview grid."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

from pipelines.cli import EXAMPLES, main, make_parser
from streams import Pipe
from streams.stages.chunk_shuffle import ChunkShuffleStage
from streams.stages.noise import NoiseStage
from streams.tools.invariants import make_tagged_sample
from streams.tools.preview import describe_params, render_overview
from streams.tools.shard_info import sample_stats

from .conftest import DEMO_SAMPLES, DEMO_URLS, REPO

COMMANDS = tuple(next(a for a in make_parser()._actions if a.dest == "command").choices)
"""Every subcommand the parser has (a new one must add its example to ``pipelines.cli.EXAMPLES``)."""


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_the_commands_are_the_documented_ones():
    assert set(COMMANDS) >= {"run", "pack", "check", "generate", "preview", "info", "bench"}


def test_top_help_is_plain_text_and_lists_every_command_with_an_example(capsys):
    text = help_text(capsys)
    assert "``" not in text and ":func:" not in text
    for command in COMMANDS:
        assert re.search(rf"\n    {re.escape(command)}\s", text) and EXAMPLES[command] in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_ends_with_its_example(capsys, command):
    text = help_text(capsys, command)
    assert "``" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[-2:] == ["example:", f"  {EXAMPLES[command]}"]
    assert EXAMPLES[command].startswith(f"python -m pipelines {command}")
    parsed = make_parser().parse_args(EXAMPLES[command].split()[3:])  # the example parses
    assert parsed.command == command


def test_info_on_the_demo_shards(capsys):
    assert main(["info", DEMO_URLS, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"info: 5 shard(s), {DEMO_SAMPLES} good sample(s), 5.6 MB")
    assert "n_mels: 40" in text and "raw_mel float16 (24)" in text and "pointers int32 (24)" in text
    assert "raw frames per sample:" in text and "|" in text


def test_info_json_figures_match_the_samples(capsys):
    assert main(["info", DEMO_URLS, "--json", "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    samples = list(Pipe.from_shards(DEMO_URLS, shuffle_shards=False))
    shards = sorted(os.path.join(REPO, "shards", "demo", f"demo-00000{i}.tar") for i in range(5))
    assert info["samples"] == DEMO_SAMPLES and info["bad_samples"] == {}
    assert info["bytes"] == sum(os.path.getsize(p) for p in shards)
    assert [s["bytes"] for s in info["per_shard"]] == [os.path.getsize(p) for p in shards]
    assert info["raw_frames"] == sum(s.raw_frames for s in samples)
    seconds = sum(s.raw_frames * s.meta["hop_length"] / s.meta["sample_rate"] for s in samples)
    assert info["raw_hours"] == pytest.approx(seconds / 3600)
    jumps = sum(int((np.diff(s.pointers.numpy()) != 1).sum()) for s in samples)
    assert info["jump_fraction"] == pytest.approx(jumps / info["edit_frames"])
    assert info["segments_per_sample"]["max"] == max(sample_stats(s).segments for s in samples)


def test_sample_stats_counts_segments_and_repeats_and_seconds():
    s = make_tagged_sample("k", 2, 10, torch.tensor([3, 4, 5, 5, 6, 0, 1, 2, 3]))
    stats = sample_stats(s.replace(meta={"hop_length": 160, "sample_rate": 16000}))
    assert (stats.segments, stats.repeats) == (3, 2)  # 3-5 | 5-6 | 0-3; 5 and 3 used twice
    assert stats.raw_seconds == pytest.approx(0.1) and stats.edit_seconds == pytest.approx(0.09)


def test_long_params_are_shortened_and_wrapped():
    params = {"mode": "independent", "raw": {"level": 0.14151074527765117, "order": list(range(400))},
              "edit": {"level": 0.06783, "sign_seed": 636375755}}
    lines = describe_params(params, width=60, max_lines=2)
    assert len(lines) == 2 and all(len(line) <= 60 for line in lines)
    assert "0.1415" in lines[0] and "400 values" in " ".join(describe_params(params, width=200))


def test_overview_png_has_a_row_per_stage(tmp_path):
    pointers = torch.arange(60).flip(0)
    sample = make_tagged_sample("o", 8, 80, pointers, generator=torch.Generator().manual_seed(1))
    stages = [("chunk_shuffle", ChunkShuffleStage(chunk_size=20)), ("noise", NoiseStage(mode="shared"))]
    path = render_overview(sample, stages, tmp_path / "previews" / "overview.png", seed=2)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    height = int.from_bytes(data[20:24], "big")  # IHDR: 2.6 inches per row at 72 dpi, 3 rows
    assert abs(height - 2.6 * 3 * 72) < 1


def test_info_names_a_damaged_shard_and_counts_the_samples_before_it(tmp_path, capsys):
    demo = os.path.join(REPO, "shards", "demo")
    with open(os.path.join(demo, "demo-000000.tar"), "rb") as f:
        (tmp_path / "cut-000000.tar").write_bytes(f.read(700_000))
    assert main(["info", str(tmp_path / "cut-000000.tar"), "--json", "--no-progress"]) == 1  # damaged: exit 1
    info = json.loads(capsys.readouterr().out)
    assert info["damaged_shards"] == {str(tmp_path / "cut-000000.tar"): "truncated_shard"}
    assert 0 < info["samples"] < 5 and info["bytes"] == 700_000
