"""Versions, staleness, declarative automation, operations and the Kubernetes executor, with
Dagster's own test helpers."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import replace

import dagster as dg
import pytest

from recsys_pipeline.definitions import build_definitions, defs
from recsys_pipeline.settings import load_settings
from recsys_pipeline_tests.conftest import tiny_rows, write_rows
from recsys_pipeline_tests.helpers import (
    materializable,
    observe_sources,
    run_graph,
    stale_statuses,
)
from recsys_pipeline_tests.test_definitions import FIXED_KEYS

TRAINING = {"item_embeddings", "sft_checkpoint", "dpo_checkpoint"}
DATA_LAYER = ["raw_csv", "sequences", "tokenizer"]
FAST_SFT = {"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
MONDAY_3AM = datetime.datetime(2026, 12, 7, 3, 0, tzinfo=datetime.UTC)


def test_every_asset_has_a_code_version():
    for assets_def in materializable():
        for key, version in assets_def.code_versions_by_key.items():
            assert version, f"{key.to_user_string()} has no code_version"


def test_training_runs_weekly_only_on_changed_inputs_and_retries():
    from recsys_pipeline.compute import GPU_POOL

    for assets_def in materializable():
        name = assets_def.key.to_user_string()
        condition = assets_def.automation_conditions_by_key[assets_def.key]
        assert condition is not None, name
        if name in TRAINING:
            assert "0 3 * * 1 if the inputs changed" in condition.get_label()
            assert assets_def.op.retry_policy.max_retries == 2
            assert assets_def.op.pool == GPU_POOL
        else:
            assert "when" in condition.get_label(), name


def test_the_gpu_limit_is_the_pool_alone():
    """No executor tag limit beside the pool: dagster.yaml and the Helm values hold the one
    limit, one step at a time."""
    from recsys_pipeline.compute import GPU_POOL
    from recsys_pipeline_tests.conftest import REPO

    assert defs.executor.name == "multiprocess"
    assert not defs.executor.config_schema.default_value.get("tag_concurrency_limits")
    instance_yaml = (REPO / "dagster.yaml").read_text()
    assert "default_limit: 1" in instance_yaml and "granularity: op" in instance_yaml
    helm = (REPO / "deploy" / "values.yaml").read_text()
    assert "defaultLimit: 1" in helm and "maxResumeRunAttempts: 3" in helm
    assert GPU_POOL == "gpu"


def test_the_automation_sensor_runs_every_asset_and_observes_every_file():
    from recsys_pipeline.automation import automation_sensor

    graph = defs.resolve_asset_graph()
    observed = {k.to_user_string() for k in graph.get_all_asset_keys()} - {
        a.key.to_user_string() for a in materializable()
    }
    assert observed == {"input_file", "steam_file"}
    assert automation_sensor.asset_selection.resolve(graph) == set(graph.get_all_asset_keys())


def data_versions(instance: dg.DagsterInstance) -> dict[str, str]:
    versions = {}
    for assets_def in materializable():
        event = instance.get_latest_materialization_event(assets_def.key)
        versions[assets_def.key.to_user_string()] = event.asset_materialization.tags[
            "dagster/data_version"
        ]
    return versions


def requested(result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    return {
        r.key.to_user_string()
        for r in result.results
        if r.true_subset.size and r.key.to_user_string() not in ("input_file", "steam_file")
    }


def direct_readers(keys: list[str]) -> set[str]:
    """Assets with a dependency on one of ``keys`` (outside ``keys``): Dagster's staleness is
    per edge, so these are what a change of ``keys`` marks STALE."""
    readers = set()
    for assets_def in materializable():
        deps = {d.to_user_string() for d in assets_def.asset_deps[assets_def.key]}
        if deps & set(keys):
            readers.add(assets_def.key.to_user_string())
    return readers - set(keys)


def test_versions_staleness_and_automation_through_a_data_change(tmp_path, resources_for, instance):
    csv = write_rows(tmp_path / "in.csv", tiny_rows())
    resources = resources_for(csv)
    observe_sources(resources, instance)
    assert run_graph(resources, instance=instance, sft_checkpoint=FAST_SFT).success
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    before = data_versions(instance)
    assert set(stale_statuses(defs, instance).values()) == {"FRESH"}

    # the data layer rebuilt from the same bytes: the same versions, everything still fresh
    assert run_graph(resources, selection=DATA_LAYER, instance=instance).success
    assert data_versions(instance) == before
    assert set(stale_statuses(defs, instance).values()) == {"FRESH"}
    # the same bytes observed again, then Monday's training tick: nothing to do
    observe_sources(resources, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert requested(result) == set()
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=result.cursor, evaluation_time=MONDAY_3AM
    )
    assert requested(result) == set()

    # one more user: the input's bytes change, raw_csv and the cheap layers follow at once,
    # the training waits for its cron, the served side for the models
    write_rows(csv, [*tiny_rows(), [999, "[1, 2, 3]", "['a', 'b', 'c']"]])
    observe_sources(resources, instance)
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=result.cursor, evaluation_time=MONDAY_3AM
    )
    assert requested(result) == {
        "raw_csv",
        "sequences",
        "tokenizer",
        "steam_enrichment",
        "wiki_summaries",
        "wiki_enrichment",
        "item_profiles",
    }
    assert run_graph(resources, selection=DATA_LAYER, instance=instance).success
    changed = {k for k, v in data_versions(instance).items() if v != before[k]}
    # the new user bought known items: the catalog, so the tokenizer's version, is unchanged
    assert changed == {"raw_csv", "sequences"}
    stale = {k for k, v in stale_statuses(defs, instance).items() if v == "STALE"}
    assert stale == direct_readers(sorted(changed)) - set(DATA_LAYER)
    assert {"sft_checkpoint", "dpo_checkpoint", "predictions", "evaluation"} <= stale

    # the next Monday tick: the training steps whose inputs changed are requested
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        cursor=result.cursor,
        evaluation_time=MONDAY_3AM + datetime.timedelta(days=7),
    )
    assert {"item_embeddings", "sft_checkpoint"} <= requested(result)


def test_the_same_run_config_twice_is_a_no_op_materialization(tmp_path, resources_for, instance):
    resources = resources_for(write_rows(tmp_path / "in.csv", tiny_rows()))
    run_graph(resources, selection="*sft_checkpoint", instance=instance, sft_checkpoint=FAST_SFT)
    first = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    again = run_graph(
        resources, selection="sft_checkpoint", instance=instance, sft_checkpoint=FAST_SFT
    )
    (event,) = again.asset_materializations_for_node("sft_checkpoint")
    second = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    assert event.metadata["reused"].value is True
    assert (
        event.metadata["artifact_version"]
        == first.asset_materialization.metadata["artifact_version"]
    )
    version = "dagster/data_version"
    assert second.asset_materialization.tags[version] == first.asset_materialization.tags[version]
    # a changed learning rate is a new version, trained
    other = {"config": {**FAST_SFT["config"], "learning_rate": 1e-3}}
    changed = run_graph(
        resources, selection="sft_checkpoint", instance=instance, sft_checkpoint=other
    )
    (event,) = changed.asset_materializations_for_node("sft_checkpoint")
    assert event.metadata["reused"].value is False
    latest = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    assert latest.asset_materialization.tags[version] != first.asset_materialization.tags[version]


@pytest.mark.parametrize("key", sorted(FIXED_KEYS))
def test_every_selection_closed_upstream_runs_on_a_fresh_instance(tmp_path, resources_for, key):
    resources = resources_for(write_rows(tmp_path / "in.csv", tiny_rows()))
    graph = defs.resolve_asset_graph()
    selected = dg.AssetSelection.assets(key).upstream().resolve(graph)
    upstream = {k.to_user_string() for k in selected}
    config = {"sft_checkpoint": FAST_SFT} if "sft_checkpoint" in upstream else {}
    result = run_graph(resources, selection=f"*{key}", **config)
    assert result.success
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert built == upstream - {"input_file", "steam_file"}


def test_a_run_failure_is_reported_with_its_step_and_error(tmp_path, resources_for, instance):
    from recsys_pipeline.automation import failure_report

    missing = tmp_path / "nope.csv"
    result = run_graph(
        resources_for(missing), selection="raw_csv", instance=instance, raise_on_error=False
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(
        e.dagster_event
        for e in instance.all_logs(result.run_id)
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="report_failed_runs",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure,
    ).for_run_failure()
    (line,) = failure_report(context)
    assert (
        f"run {result.run_id}, step raw_csv failed" in line and "nope.csv: file not found" in line
    )


def test_predictions_must_be_fresh_within_the_configured_days():
    for days, env in ((8.0, {}), (2.0, {"RECSYS_PREDICTIONS_MAX_AGE_DAYS": "2"})):
        built = build_definitions(load_settings({**os.environ, **env}))
        (predictions,) = [a for a in built.assets if a.key == dg.AssetKey("predictions")]
        policy = predictions.specs_by_key[dg.AssetKey("predictions")].freshness_policy
        assert policy.fail_window.to_timedelta() == datetime.timedelta(days=days)


# --- Kubernetes -------------------------------------------------------------------------------------


def k8s_definitions() -> dg.Definitions:
    pytest.importorskip("dagster_k8s")
    return build_definitions(replace(load_settings(), executor="k8s"))


def test_definitions_load_with_the_k8s_executor():
    assert k8s_definitions().executor.name == "k8s"


def test_only_training_steps_get_gpu_pods():
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    config = DagsterK8sJobConfig(job_image="recsys:latest", dagster_home="/opt/dagster/home")
    for assets_def in k8s_definitions().assets:
        name = assets_def.key.to_user_string()
        user_config = get_user_defined_k8s_config(
            assets_def.op.tags
        )  # Dagster stores tags as strings
        job = construct_dagster_k8s_job(
            config, ["dagster", "api", "execute_step"], "step", user_config
        )
        pod = job.spec.template.spec
        limits = (pod.containers[0].resources.limits or {}) if pod.containers[0].resources else {}
        if name in TRAINING:
            assert limits.get("nvidia.com/gpu") == "1", name
            assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
            assert pod.tolerations[0].key == "nvidia.com/gpu"
        else:
            assert "nvidia.com/gpu" not in limits, name


def test_gpu_count_node_selector_and_tolerations_are_configurable(monkeypatch):
    from recsys_pipeline.compute import training_op_tags

    env = {
        "RECSYS_K8S_GPUS": "2",
        "RECSYS_K8S_NODE_SELECTOR": json.dumps({"pool": "h200"}),
        "RECSYS_K8S_TOLERATIONS": json.dumps([{"key": "gpu", "operator": "Equal", "value": "yes"}]),
    }
    tags = training_op_tags(load_settings({**os.environ, **env}))["dagster-k8s/config"]
    assert tags["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert tags["pod_spec_config"]["node_selector"] == {"pool": "h200"}
    assert tags["pod_spec_config"]["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "yes"}
    ]
