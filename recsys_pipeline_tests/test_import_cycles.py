"""No import cycle among the package's modules: every ``recsys_pipeline`` import, read with ast
at any depth of a module's code (imports inside functions included, since they run sooner or
later), is an edge, and the graph must sort topologically."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from recsys_pipeline_tests.conftest import REPO

PACKAGE = REPO / "recsys_pipeline"


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports: ``from a.b import c`` imports a.b.c where that is a
    module, else a.b. A package's own ``__init__`` also runs on the way to its submodules, but it
    is no edge: an ``__init__`` that imports its submodules (assets/) would make a cycle of every
    one of them, although Python imports them in that order without trouble; a submodule that
    reads a name from its package imports the package, which is an edge."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if node.module else parent
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return (found & modules.keys()) - {name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_graph_holds_lazy_relative_and_submodule_imports(graph):
    # imported inside functions only
    assert "recsys_pipeline.ranking.scoring" in graph["recsys_pipeline.ranking.retrieval"]
    # from .configuration_sasrec import ...
    modeling = graph["recsys_pipeline.models.modeling_sasrec"]
    assert "recsys_pipeline.models.configuration_sasrec" in modeling
    # from recsys_pipeline.assets import raw_csv, ...
    assert "recsys_pipeline.assets.raw_csv" in graph["recsys_pipeline.assets"]


def test_no_module_imports_itself_in_a_circle(graph):
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"an import cycle: {' -> '.join(error.args[1])}")
