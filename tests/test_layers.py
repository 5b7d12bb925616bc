"""The folders are the layers: every import points down, and no module imports itself in a circle.

Layers, low to high: the core (modules at the top of ``streams/``), ``streams/reading/``,
``streams/stages/``, ``streams/tools/`` (a tool may apply stages, as the preview does; a stage never
uses a tool), then ``pipelines/``. A module may import its own layer and the layers below. The
walk reads every ``import`` with :mod:`ast`, those inside functions too (a lazy import is still an
arrow); only imports under ``if TYPE_CHECKING:`` are left out, since they never run. The package
facades (``streams/__init__.py``, ``pipelines/__init__.py``) re-export the layers for users and
are not part of the graph.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {"streams": 0, "streams.audio": 0, "streams.reading": 1, "streams.stages": 2, "streams.tools": 3,
          "pipelines": 4}
LAYER_NAMES = {0: "core", 1: "reading", 2: "stages", 3: "tools", 4: "pipelines"}
FACADES = {"streams", "pipelines"}


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the two packages."""
    found = {}
    for package in ("streams", "pipelines"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    parts = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].split(os.sep)
                    found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(folder, name)
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _imports(module: str) -> set[str]:
    """The project modules ``module`` imports (a ``from package import name`` counts the submodule)."""
    path = MODULES[module]
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    targets = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = package.split(".")
            if node.level > 1:
                base = base[:-(node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix
                     for alias in node.names]
        targets.update(name for name in names if name in MODULES)
    return targets - {module}


def _layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            if prefix == "streams" and module.count(".") > 1:
                continue
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer; add its folder to LAYERS")


GRAPH = {module: _imports(module) for module in MODULES if module not in FACADES}


def test_the_walk_sees_the_imports_it_must_judge():
    assert "streams.pipe" in GRAPH["streams.stages.shuffle"]
    assert "streams.reading.skips" in GRAPH["streams.reading.skip_ledger"]  # "from . import skips"
    assert _layer("streams.checks") == 0 and _layer("streams.reading.source") == 1
    assert _layer("streams.tools.preview") == 3 and _layer("pipelines.build") == 4
    assert _layer("streams.audio.timeline") == 0


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_point_down(module):
    upward = sorted(target for target in GRAPH[module]
                    if target not in FACADES and _layer(target) > _layer(module))
    facade = sorted(target for target in GRAPH[module] if target in FACADES and _layer(target) >= _layer(module))
    assert not upward, (f"{module} ({LAYER_NAMES[_layer(module)]}) imports the layer above: {upward}; move the "
                        "shared code down, or hand it in from above")
    assert not facade, f"{module} imports its own package facade {facade}; import the module that defines it"


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    circles = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                circles.append(path[path.index(target):] + [target])
            elif target in GRAPH and target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)
