"""The README's first commands stay true: CI runs its test command verbatim."""

from __future__ import annotations

import os
import re

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


def _layout_section() -> str:
    with open(os.path.join(REPO, "README.md")) as f:
        return f.read().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def _modules(package: str, *, packaging: bool = False) -> list[str]:
    found = []
    for folder, _, files in os.walk(os.path.join(REPO, package)):
        found += [os.path.relpath(os.path.join(folder, name), REPO) for name in files if name.endswith(".py")]
    return sorted(m for m in found if packaging or not m.endswith(("__init__.py", "__main__.py")))


def test_readme_layout_names_every_module():
    """The layout section is the newcomer's map: a module it does not name is a module nobody finds."""
    section = _layout_section()
    missing = [m for m in _modules("streams") + _modules("pipelines") if f"`{os.path.basename(m)}`" not in section]
    assert not missing, f"README ## Layout does not name {missing}: add a line saying what each is for"


def test_readme_layout_names_no_missing_module():
    section = _layout_section()
    on_disk = {os.path.basename(m) for package in ("streams", "pipelines", "tests", "examples")
               for m in _modules(package, packaging=True)}
    named = set(re.findall(r"`(?:[\w/]+/)?(\w+\.py)`", section))
    assert named <= on_disk, f"README ## Layout names {sorted(named - on_disk)}, which are not in the tree"
