"""Code versions follow the code: each asset's is a hash of the package code its module runs
(lazy imports included, comments, docstrings and layout aside) and of the libraries it imports,
so new training code retrains, and unchanged code reuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from recsys_pipeline.assets import ASSET_MODULES, code_versions
from recsys_pipeline.assets.code_versions import (
    LIBRARIES,
    NOT_INSTALLED,
    SOURCE_ROOT,
    closure_of,
    code_version_of,
    installed_version,
)
from recsys_pipeline.definitions import build_definitions, defs
from recsys_pipeline.settings import load_settings
from recsys_pipeline_tests.conftest import tiny_rows, write_rows
from recsys_pipeline_tests.helpers import materializable, stale_statuses
from recsys_pipeline_tests.test_automation import FAST_SFT

ASSETS = "recsys_pipeline.assets"
SFT = f"{ASSETS}.sft_checkpoint"
SFT_TRAINING = "recsys_pipeline.training.sft"
# sft.py's metric that picks the best epoch: another one is another model
METRIC = 'METRIC = f"ndcg@{TOP_K}"'
NAMES = [m.__name__.removeprefix(f"{ASSETS}.") for m in ASSET_MODULES]


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the package's source, to edit."""
    ignore = shutil.ignore_patterns("__pycache__")
    return Path(shutil.copytree(SOURCE_ROOT, tmp_path / "src" / "recsys_pipeline", ignore=ignore))


def versions(root: Path) -> dict[str, str]:
    """Each asset module's code version (by its short name) from the source under ``root``."""
    return {name: code_version_of(f"{ASSETS}.{name}", root) for name in NAMES}


def running(root: Path, module: str) -> set[str]:
    """The asset modules whose closure holds ``module``."""
    return {name for name in NAMES if module in closure_of(f"{ASSETS}.{name}", root).modules}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name, version in before.items() if after[name] != version}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} once"
    path.write_text(text.replace(old, new))


def append(path: Path, code: str) -> None:
    path.write_text(f"{path.read_text()}\n{code}\n")


# --- what counts ---------------------------------------------------------------------------------


def test_a_changed_line_of_training_code_changes_the_assets_that_run_it(package):
    before = versions(package)
    edit(package / "training" / "sft.py", METRIC, 'METRIC = f"mrr@{TOP_K}"')
    after = versions(package)
    assert changed(before, after) == running(package, SFT_TRAINING)
    # dpo_checkpoint imports sft_checkpoint's module (for PROCESSES), whose train() imports
    # training.sft; the serving side reads served_model's record and runs no training code
    assert running(package, SFT_TRAINING) == {"sft_checkpoint", "dpo_checkpoint"}


def test_comments_docstrings_and_layout_change_nothing(package):
    before = versions(package)
    sft = package / "training" / "sft.py"
    edit(sft, METRIC, f"# the best epoch's metric\n{METRIC}  # by validation")
    edit(sft, '"""Two-stage supervised training', '"""Supervised training in two stages')
    edit(sft, "The output layer's compute dtype", "The compute dtype of the output layer")
    edit(sft, 'STAGE_DONE = "stage_done.json"', '\n\n\nSTAGE_DONE = (\n    "stage_done.json"\n)')
    assert versions(package) == before


def test_code_an_asset_does_not_run_changes_nothing_for_it(package):
    before = versions(package)
    append(package / "serving" / "app.py", "LIMIT = 1")
    assert versions(package) == before  # no asset imports the service

    steam = "recsys_pipeline.enrichment.steam"
    assert steam not in closure_of(SFT, package).modules
    append(package / "enrichment" / "steam.py", "LIMIT = 1")
    after = versions(package)
    assert changed(before, after) == running(package, steam)
    assert "steam_enrichment" in changed(before, after)
    assert "sft_checkpoint" not in changed(before, after)

    # the input download and the Wikipedia client: raw_csv and the enrichment run them, the
    # training does not (assets import their resource's own module, not the resources package)
    before = after
    append(package / "data" / "amazon.py", "LIMIT = 1")
    append(package / "enrichment" / "wikipedia.py", "LIMIT = 1")
    after = versions(package)
    assert {"raw_csv", "wiki_enrichment"} <= changed(before, after)
    assert not {"sft_checkpoint", "dpo_checkpoint", "evaluation"} & changed(before, after)


def test_the_closure_follows_lazy_imports_imported_submodules_and_package_inits(package):
    modules = closure_of(SFT, package).modules
    assert SFT_TRAINING in modules  # imported inside train()
    assert "recsys_pipeline.training.distributed" in modules  # from recsys_pipeline.training import
    assert {"recsys_pipeline", "recsys_pipeline.training"} <= set(modules)  # run on import
    # the assets package's __init__ imports every asset module: it counts, they do not
    raw_csv = closure_of(f"{ASSETS}.raw_csv", package).modules
    assert ASSETS in raw_csv and SFT not in raw_csv

    before = versions(package)
    append(package / "ranking" / "__init__.py", "TOP = 10")
    after = versions(package)
    assert changed(before, after) == running(package, "recsys_pipeline.ranking")
    assert "sft_checkpoint" in changed(before, after)
    assert "raw_csv" not in changed(before, after)


def test_relative_imports_count_too(package):
    raw_csv = f"{ASSETS}.raw_csv"
    assert "recsys_pipeline.serving.app" not in closure_of(raw_csv, package).modules
    append(package / "assets" / "raw_csv.py", "from ..serving import app")
    assert "recsys_pipeline.serving.app" in closure_of(raw_csv, package).modules


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_a_library_version_counts_where_the_closure_imports_it(monkeypatch, library):
    before = versions(SOURCE_ROOT)
    importing = {n for n in NAMES if library in closure_of(f"{ASSETS}.{n}").libraries}
    assert importing, f"no asset imports {library}"
    monkeypatch.setattr(
        code_versions,
        "installed_version",
        lambda name: "upgraded" if name == library else installed_version(name),
    )
    assert changed(before, versions(SOURCE_ROOT)) == importing


def test_trl_counts_for_the_dpo_side_and_torch_even_for_raw_csv():
    trl = {n for n in NAMES if "trl" in closure_of(f"{ASSETS}.{n}").libraries}
    assert trl == {"dpo_checkpoint"}
    # raw_csv reaches torch and transformers too: settings.py imports enrichment.text_vectors
    # (its settings model) and failures.py imports models.checkpoints
    assert {"torch", "transformers"} <= closure_of(f"{ASSETS}.raw_csv").libraries


def test_the_first_installed_distribution_gives_a_library_version(monkeypatch):
    monkeypatch.setitem(LIBRARIES, "absent_library", ("no-such-distribution",))
    monkeypatch.setitem(LIBRARIES, "numpy_again", ("no-such-distribution", "numpy"))
    assert installed_version("absent_library") == NOT_INSTALLED
    assert installed_version("numpy_again") == installed_version("numpy")
    assert installed_version("numpy").startswith("numpy==")


# --- the Dagster definitions -----------------------------------------------------------------------


def module_of(assets_def: dg.AssetsDefinition) -> str:
    return assets_def.op.compute_fn.decorated_fn.__module__


def test_assets_that_run_different_code_have_different_versions():
    by_module: dict[str, set[str]] = {}
    for assets_def in materializable(defs):
        module = module_of(assets_def)
        for version in assets_def.code_versions_by_key.values():
            assert version == code_version_of(module)
            by_module.setdefault(module, set()).add(version)
    assert len(by_module) == len(ASSET_MODULES)
    assert all(len(found) == 1 for found in by_module.values())  # one module, one version
    assert len(set().union(*by_module.values())) == len(by_module)


def materialize(
    definitions: dg.Definitions, resources: dict, instance: dg.DagsterInstance, selection: str
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*definitions.assets, *definitions.asset_checks],
        resources=resources,
        selection=selection,
        instance=instance,
        run_config={"ops": {"sft_checkpoint": FAST_SFT}},
    )


def reused(result: dg.ExecuteInProcessResult) -> bool:
    (event,) = result.asset_materializations_for_node("sft_checkpoint")
    return event.metadata["reused"].value


def test_new_training_code_turns_sft_stale_and_retrains(
    tmp_path, resources_for, monkeypatch, package, instance
):
    resources = resources_for(write_rows(tmp_path / "in.csv", tiny_rows()))
    settings = load_settings()
    built = materialize(build_definitions(settings), resources, instance, "*dpo_checkpoint")
    done = {e.asset_key.to_user_string() for e in built.get_asset_materialization_events()}

    # the same code, definitions built again: the same versions, the model reused
    same = build_definitions(settings)
    assert {k: v for k, v in stale_statuses(same, instance).items() if k in done} == dict.fromkeys(
        done, "FRESH"
    )
    assert reused(materialize(same, resources, instance, "sft_checkpoint")) is True

    # new training code: what runs it is stale, then trains again
    edit(package / "training" / "sft.py", METRIC, 'METRIC = f"mrr@{TOP_K}"')
    monkeypatch.setattr(code_versions, "SOURCE_ROOT", package)
    upgraded = build_definitions(settings)
    stale = {k for k, v in stale_statuses(upgraded, instance).items() if v == "STALE"}
    assert stale == {"sft_checkpoint", "dpo_checkpoint"}  # dpo_checkpoint's closure holds sft.py
    assert reused(materialize(upgraded, resources, instance, "sft_checkpoint")) is False
    latest = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    assert latest.asset_materialization.tags["dagster/code_version"] == code_version_of(SFT)
    # the new model is a new data version: its readers are stale now
    after = stale_statuses(upgraded, instance)
    assert after["sft_checkpoint"] == "FRESH"
    assert after["dpo_pairs"] == after["dpo_checkpoint"] == "STALE"
