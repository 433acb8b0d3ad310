"""The package's layout rules, and the README's Layout section kept exact."""

from __future__ import annotations

import ast
import re

import dagster as dg
import pytest

from recsys_pipeline_tests.conftest import REPO

PACKAGE = REPO / "recsys_pipeline"
WIRING = {"definitions.py", "settings.py", "compute.py", "automation.py", "__init__.py"}


def modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


def imported(module: str) -> set[str]:
    """Every module ``module`` imports, at any depth of its code (lazy imports included)."""
    tree = ast.parse((PACKAGE / module).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_root_holds_only_the_wiring():
    assert {m for m in modules() if "/" not in m} == WIRING


@pytest.mark.parametrize("layer", ["models", "ranking"])
def test_inference_never_imports_training(layer):
    for module in modules():
        if module.startswith(f"{layer}/"):
            training = {n for n in imported(module) if n.startswith("recsys_pipeline.training")}
            assert not training, (module, training)


def test_only_assets_resources_and_the_root_import_dagster():
    for module in modules():
        if module.startswith(("assets/", "resources/")) or "/" not in module:
            continue
        uses = {n for n in imported(module) if n.split(".")[0] in ("dagster", "dagster_pipes")}
        # the training entry point reports back through Pipes when Dagster launched it
        allowed = {"dagster_pipes"} if module == "training/launch.py" else set()
        assert uses <= allowed, (module, uses)


def test_every_asset_key_is_built_in_the_module_of_its_name():
    from recsys_pipeline.definitions import defs

    # the observed sources are declared beside their one reader
    beside = {
        "wiki_summaries": "wiki_enrichment",
        "input_file": "raw_csv",
        "steam_file": "steam_enrichment",
    }
    for assets_def in defs.assets:
        name = assets_def.key.to_user_string()
        function = (
            assets_def.op.compute_fn.decorated_fn
            if isinstance(assets_def, dg.AssetsDefinition)
            else assets_def.observe_fn
        )
        expected = beside.get(name, name)
        assert function.__module__ == f"recsys_pipeline.assets.{expected}", name


def test_the_readme_layout_lists_every_module_once():
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    listed, folder = [], None
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or match.group(2) == "recsys_pipeline/":
            continue
        indent, name = len(match.group(1)), match.group(2)
        if indent == 2 and name.endswith("/"):
            folder = name
        elif indent == 2:
            folder = None
            listed.append(name)
        elif indent == 4 and folder:
            listed.append(folder + name)
    package_modules = [m for m in modules() if not m.endswith("/__init__.py")]
    assert sorted(listed) == package_modules
