"""The README stays short and true: at most 300 lines, every link resolves, every code block runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_RUN = re.compile(r"^# not run as is \(.*\): its complete twin is (\S+)$")


def _read(path: str) -> str:
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", _read("README.md"), flags=re.S | re.M)


def test_readme_is_at_most_300_lines():
    assert len(_read("README.md").splitlines()) <= 300, "move a topic into docs/ and link it from the contents"


@pytest.mark.parametrize("page", ["README.md", *sorted(f"docs/{n}" for n in os.listdir(os.path.join(REPO, "docs"))
                                                     if n.endswith(".md"))])
def test_every_relative_link_resolves(page):
    base = os.path.dirname(os.path.join(REPO, page))
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(page))
    missing = [t for t in targets if "://" not in t and not os.path.exists(os.path.join(base, t))]
    assert not missing, f"{page} links to {missing}, which do not exist"


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_every_python_block_runs(index):
    """Each ```python block runs as written from the repository root (on the demo shards), or says
    on its first line that it does not and names its complete twin, which a test runs."""
    block = _blocks("python")[index]
    first = block.splitlines()[0]
    twin = NOT_RUN.match(first)
    if twin:
        path = twin.group(1)
        assert os.path.isfile(os.path.join(REPO, path)), f"the README names a twin {path} that does not exist"
        tests = "".join(_read(f"tests/{n}") for n in os.listdir(os.path.join(REPO, "tests")) if n.endswith(".py"))
        assert os.path.basename(path) in tests.replace(os.path.basename(__file__), ""), f"no test runs {path}"
        return
    done = subprocess.run([sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, f"README python block {index} failed:\n{block}\n{done.stderr[-3000:]}"


def test_the_torchrun_block_names_the_twin():
    (command,) = [b for b in _blocks("bash") if "torch.distributed.run" in b]
    assert "examples/ddp_train.py" in command
