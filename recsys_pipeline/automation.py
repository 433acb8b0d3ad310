"""When the graph re-runs: declarative automation conditions, the sensors that evaluate them and
report failures, and the job for a manual full run.

- The input CSV and the Steam file are observed sources: their data version is the sha256 of
  their bytes, observed every minute.
- Cheap data and enrichment assets follow an upstream *data version* change (not a mere
  re-materialization: the same bytes give the same versions, so nothing follows them).
- The preference pairs follow the SFT model; the served-model record follows both checkpoints;
  the index and the evaluation follow that record, and the predictions the index.
- The GPU-tagged training assets run on a weekly cron, and only when an upstream data version
  changed since their last run (or they were never built).
- The automation daemon evaluates all of it; `dagster dev` runs the daemon.
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition

# How often the observed sources are re-hashed (a 40 MB CSV hashes in about 0.1 s).
OBSERVE = AC.cron_tick_passed("* * * * *").since_last_handled().with_label("every minute")

_QUIET = ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()


def on_change_of(*keys: str) -> dg.AutomationCondition:
    """Run when the data version of one of the upstream ``keys`` (all upstreams when none are
    named) changed, or it is about to be rebuilt; or when this asset went missing."""
    changed = AC.any_deps_match(AC.data_version_changed() | AC.will_be_requested())
    if keys:
        changed = changed.allow(dg.AssetSelection.assets(*keys))
    label = ", ".join(keys) if keys else "an upstream"
    return ((AC.newly_missing() | changed).since_last_handled() & _QUIET).with_label(
        f"when {label} changes"
    )


ON_UPSTREAM_CHANGE = on_change_of()
# The served side moves with the models, never with new data under an old model: a new catalog
# does not fit the old model's item rows.
FOLLOW_SFT = on_change_of("sft_checkpoint")
FOLLOW_CHECKPOINTS = on_change_of("dpo_checkpoint", "sft_checkpoint")
FOLLOW_SERVED_MODEL = on_change_of("served_model")
FOLLOW_INDEX = on_change_of("faiss_index")


def on_cron_if_inputs_changed(cron: str) -> dg.AutomationCondition:
    """At each ``cron`` tick: run when some upstream data version changed since this asset was
    last requested or updated, or when it was never built; otherwise do nothing."""
    inputs_changed = (
        AC.any_deps_match(AC.data_version_changed())
        .since(AC.newly_requested() | AC.newly_updated())
        .with_label("an upstream data version changed since the last run")
    )
    return (
        AC.cron_tick_passed(cron).since_last_handled() & (inputs_changed | AC.missing()) & _QUIET
    ).with_label(f"on {cron} if the inputs changed")


full_pipeline = dg.define_asset_job("full_pipeline", selection=dg.AssetSelection.all())

automation_sensor = dg.AutomationConditionSensorDefinition(
    "recsys_automation",
    # every asset and the observed files they read (the stable spelling of the beta
    # `all(include_sources=True)`: a source nothing reads would be one nobody needs observed)
    target=dg.AssetSelection.all() | dg.AssetSelection.all().upstream_source_assets(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def report_failed_runs(context: dg.RunFailureSensorContext) -> None:
    """Logs each failed step of a failed run with its error (the sensor's tick log)."""
    for line in failure_report(context):
        context.log.error(line)


def failure_report(context: dg.RunFailureSensorContext) -> list[str]:
    """One line per failed step of the run: the step and its error."""
    run_id = context.dagster_run.run_id
    steps = context.get_step_failure_events()
    if not steps:
        return [f"run {run_id} failed before any step: {context.failure_event.message}"]
    lines = []
    for event in steps:
        error = event.event_specific_data.error
        message = error.message.strip() if error else event.message
        lines.append(f"run {run_id}, step {event.step_key} failed: {message}")
    return lines
