"""The README's first commands stay true: CI runs its test command verbatim."""

from __future__ import annotations

import os

from .conftest import REPO


def _commands() -> list[str]:
    with open(os.path.join(REPO, "README.md")) as f:
        head = f.read().split("\n## ", 1)[0]
    return [line.strip() for line in head.splitlines() if line.strip().startswith("python -m pip install")]


def test_readme_starts_with_the_two_commands():
    run, test = _commands()[:2]
    assert run.endswith("python -m pipelines run pipelines/configs/full.json --epochs 2 --workers 2")
    assert test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci_lines = [line.strip() for line in f]
    assert _commands()[1] in ci_lines
