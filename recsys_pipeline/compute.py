"""Where steps run: the default multiprocess executor, or Kubernetes (RECSYS_EXECUTOR=k8s) with
GPU pods for the training steps only."""

from __future__ import annotations

import dagster as dg

from recsys_pipeline.settings import Settings

GPU_TAG = "gpu"
GPU_POOL = "gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"  # read by dagster-k8s for each step's pod


def training_step(settings: Settings) -> dict[str, object]:
    """The ``@dg.asset`` arguments of every GPU-tagged training step."""
    return {"op_tags": training_op_tags(settings), "pool": GPU_POOL}


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
    # One GPU step at a time within a run; across runs the instance's `gpu` pool does the same.
    limits = {"tag_concurrency_limits": [{"key": GPU_TAG, "value": "true", "limit": 1}]}
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(limits)
    return dg.multiprocess_executor.configured(limits)
