"""Schedules, sensors, staleness and the Kubernetes executor, with Dagster's own test helpers."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import dagster as dg
import pytest

from recsys_pipeline.automation import full_pipeline, input_file_changed, weekly_full_pipeline
from recsys_pipeline.definitions import build_definitions, defs
from recsys_pipeline.resources import InputSource, RecsysStorage
from recsys_pipeline.settings import load_settings
from recsys_pipeline_tests.conftest import tiny_rows, write_rows

TRAINING = {"item_embeddings", "sft_checkpoint", "dpo_checkpoint"}


def sensor_tick(tmp_path, csv, cursor=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={
            "input_source": InputSource(raw_csv=str(csv), offline=True),
            "storage": RecsysStorage(data_dir=str(tmp_path / "data")),
        },
    )
    return input_file_changed(context)


def test_sensor_runs_raw_csv_plus_only_when_the_content_changes(tmp_path):
    csv = write_rows(tmp_path / "in.csv", tiny_rows())
    first = sensor_tick(tmp_path, csv)
    assert len(first.run_requests) == 1 and first.cursor
    assert first.run_requests[0].run_key == first.cursor
    assert isinstance(sensor_tick(tmp_path, csv, first.cursor), dg.SkipReason)
    os.utime(csv, (time.time() + 60, time.time() + 60))  # a new mtime, the same bytes
    assert isinstance(sensor_tick(tmp_path, csv, first.cursor), dg.SkipReason)
    write_rows(csv, tiny_rows(seed=1))
    changed = sensor_tick(tmp_path, csv, first.cursor)
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor
    missing = sensor_tick(tmp_path, tmp_path / "gone.csv")
    assert isinstance(missing, dg.SkipReason) and "no input file" in missing.skip_message


def test_sensor_job_is_raw_csv_and_its_children():
    job = defs.get_job_def(input_file_changed.job_name)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"raw_csv", "sequences", "tokenizer"}


def test_weekly_schedule_runs_the_whole_graph_with_valid_config():
    context = dg.build_schedule_context(scheduled_execution_time=None)
    request = weekly_full_pipeline.evaluate_tick(context).run_requests[0]
    job = defs.get_job_def(full_pipeline.name)
    assert dg.validate_run_config(job, request.run_config) is not None
    assert weekly_full_pipeline.cron_schedule == "0 3 * * 1"
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {k.to_user_string() for k in defs.resolve_all_asset_keys()}


def test_downstream_assets_turn_stale_after_upstream_changes(tmp_path, tiny_csv, resources_for):
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver

    instance = dg.DagsterInstance.ephemeral()
    assets = [
        a for a in defs.assets if a.key.to_user_string() in {"raw_csv", "sequences", "tokenizer"}
    ]
    resources = resources_for(tiny_csv)
    dg.materialize(assets, instance=instance, resources=resources)
    status = get_stale_status_resolver(instance, assets)
    assert status.get_status(dg.AssetKey("sequences")) == StaleStatus.FRESH
    dg.materialize(
        [a for a in assets if a.key == dg.AssetKey("raw_csv")],
        instance=instance,
        resources=resources,
    )
    status = get_stale_status_resolver(instance, assets)
    assert status.get_status(dg.AssetKey("sequences")) == StaleStatus.STALE
    assert status.get_status(dg.AssetKey("tokenizer")) == StaleStatus.STALE


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
