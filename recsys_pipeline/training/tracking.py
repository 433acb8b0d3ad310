"""Where a Trainer's experiment tracker (``report_to``) recorded the run it just logged."""

from __future__ import annotations


def tracker_run(report_to: str) -> dict[str, str]:
    """MLflow: the id and tracking URI of the run the Trainer just logged to (transformers'
    MLflowCallback starts and ends it through mlflow's fluent API and keeps no public handle on
    it, so mlflow's own record of this process's last run is read). Otherwise, or in a process
    that logged no run (torchrun ranks other than 0), nothing: TensorBoard's event files are in
    the Trainer's output folder, which the caller knows."""
    if report_to != "mlflow":
        return {}
    import mlflow

    run = mlflow.last_active_run()
    if run is None:
        return {}
    return {"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri()}
