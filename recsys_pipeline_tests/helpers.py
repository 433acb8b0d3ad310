"""Helpers for tests that run the Dagster graph."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from recsys_pipeline.definitions import defs


def run_graph(resources: dict, selection: str = "*", raise_on_error: bool = True, **run_config):
    """Materialize ``selection`` of the real definitions (assets and their checks) in-process."""
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=resources,
        selection=selection,
        raise_on_error=raise_on_error,
        run_config={"ops": run_config} if run_config else None,
    )


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
