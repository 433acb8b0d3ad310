"""Helpers for tests that run the Dagster graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from recsys_pipeline.definitions import defs


def run_graph(
    resources: dict,
    selection: str = "*",
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
    **run_config,
):
    """Materialize ``selection`` of the real definitions (assets and their checks) in-process;
    each call gets a fresh throwaway instance unless one is given."""
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=resources,
        selection=selection,
        raise_on_error=raise_on_error,
        instance=instance,
        run_config={"ops": run_config} if run_config else None,
    )


def observe_sources(resources: dict, instance: dg.DagsterInstance):
    """One observation of the input file and the Steam file, as the automation daemon makes
    (a run of observable assets observes them)."""
    sources = [a for a in defs.assets if a.key.to_user_string() in ("input_file", "steam_file")]
    needed = {"input_source", "steam_source", "storage"}
    return dg.materialize(
        sources,
        selection=sources,
        instance=instance,
        resources={k: resources[k] for k in needed},
    )


def materializable(definitions: dg.Definitions = defs) -> list[dg.AssetsDefinition]:
    """The assets ``definitions`` builds (not the observed files)."""
    return [
        a for a in definitions.assets if isinstance(a, dg.AssetsDefinition) and a.is_materializable
    ]


def stale_statuses(definitions: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, str]:
    """Each materializable asset's status as the UI shows it: FRESH, STALE or MISSING. Dagster
    1.13 has no public API for it (the UI reads it over GraphQL), so this, the one use of
    Dagster's own test helper, is pinned in test_contracts.py."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    resolver = get_stale_status_resolver(instance, definitions.assets)
    return {
        a.key.to_user_string(): resolver.get_status(a.key).value
        for a in materializable(definitions)
    }


def step_logs(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """What each step of the run logged itself (``context.log``), by step key."""
    logs: dict[str, list[str]] = {}
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is None:
            logs.setdefault(entry.step_key, []).append(entry.user_message)
    return logs


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def materialization_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = result.asset_materializations_for_node(key)
    return {name: value.value for name, value in event.metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "expected a failed step"
    return failures[0].event_specific_data.error_display_string


def read_metrics(data_dir: Path) -> dict:
    return json.loads((data_dir / "artifacts" / "evaluation" / "metrics.json").read_text())


def cli_env(tmp_path: Path, csv: Path, **extra: str) -> dict[str, str]:
    """Environment for the real `dagster` CLI on tiny data under tmp_path (offline, CPU)."""
    from recsys_pipeline_tests.conftest import REPO

    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        **os.environ,
        "RECSYS_DATA_DIR": str(tmp_path / "data"),
        "RECSYS_RAW_CSV": str(csv),
        "RECSYS_PROFILE": "cpu",
        "RECSYS_OFFLINE": "1",
        # tiny data only: not the shared Steam table `make test` exports (encoding its 27k names
        # took two minutes of a tiny test)
        "RECSYS_STEAM_CSV": "",
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO),
        **extra,
    }


def materialize_command(selection: str, config: dict | None = None) -> list[str]:
    """`dagster asset materialize -m recsys_pipeline.definitions --select SELECTION`."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [
        dagster,
        "asset",
        "materialize",
        "-m",
        "recsys_pipeline.definitions",
        "--select",
        selection,
    ]
    return command + (["--config-json", json.dumps(config)] if config else [])


def materialize_cli(
    selection: str, tmp_path: Path, csv: Path, cwd: Path
) -> subprocess.CompletedProcess:
    """Runs the real CLI on tiny data to the end; fails the test with its log if it failed."""
    done = subprocess.run(
        materialize_command(selection),
        cwd=cwd,
        env=cli_env(tmp_path, csv),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def republish(artifacts: Path, key: str, change) -> Path:
    """Publish a new version of ``key`` that is the current one changed by ``change(folder)``:
    a well-formed artifact with the wrong content, as a buggy writer would leave it."""
    import shutil

    from recsys_pipeline.data.artifacts import MANIFEST, ArtifactStore

    store = ArtifactStore(artifacts)
    current = store.path(key)
    with store.writing(key) as folder:
        shutil.copytree(current, folder, dirs_exist_ok=True)
        (folder / MANIFEST).unlink()
        change(folder)
    return store.published[key]
