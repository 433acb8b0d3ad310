"""Where steps run: the default multiprocess executor, or Kubernetes (RECSYS_EXECUTOR=k8s) with
GPU pods for the training steps only."""

from __future__ import annotations

import dagster as dg

from recsys_pipeline.automation import on_cron_if_inputs_changed
from recsys_pipeline.settings import Settings

GPU_TAG = "gpu"  # marks the GPU steps (the UI filters on it); limits come from the pool
GPU_POOL = "gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"  # read by dagster-k8s for each step's pod


def training_step(settings: Settings) -> dict[str, object]:
    """The ``@dg.asset`` arguments of every GPU-tagged training step: its tags, the `gpu` pool
    (the one place that limits GPU steps, across runs and within one), the weekly
    only-if-inputs-changed automation, and retries: a killed or preempted step starts again and
    resumes from its Trainer checkpoint (a bad setting fails with ``allow_retries=False``)."""
    return {
        "op_tags": training_op_tags(settings),
        "pool": GPU_POOL,
        "automation_condition": on_cron_if_inputs_changed(settings.training_cron),
        "retry_policy": dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
    }


def training_op_tags(settings: Settings) -> dict[str, object]:
    """Tags of the training steps: the executor's `gpu` concurrency tag, and the pod settings
    that request GPUs when the step runs as a Kubernetes job (ignored by other executors)."""
    k8s = settings.k8s
    return {
        GPU_TAG: "true",
        K8S_CONFIG_TAG: {
            "container_config": {"resources": {"limits": {"nvidia.com/gpu": str(k8s.gpus)}}},
            "pod_spec_config": {
                "node_selector": dict(k8s.node_selector),
                "tolerations": [dict(t) for t in k8s.tolerations],
            },
        },
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """How many GPU steps run at once is the instance's `gpu` pool limit (dagster.yaml,
    deploy/values.yaml), not an executor setting."""
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.multiprocess_executor
