"""Benchmark: what a re-run costs when nothing, or one user, changed (shared data, CPU profile).

In a scratch folder, with its own copy of the shared CSV and its own Dagster instance:
  0. the whole graph, as `make run` builds it (skipped with --reuse when it is already there);
  a. the input rewritten with the same bytes, observed, and the automation evaluated at a
     training cron tick: what is requested (nothing), and the seconds from the tick to that answer;
  c. sft_checkpoint materialized again with the same run config: recognised as unchanged
     (a no-op materialization of the same version), and its seconds against the first training's;
  b. one user appended: the requested runs, the set marked stale once they ran, against
     raw_csv's downstream, and the wall time of re-running everything that is stale.

    .venv/bin/python -m bench.incremental --scratch /tmp/incremental [--reuse]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from recsys_pipeline.monitoring.provenance import REPO
from recsys_pipeline.settings import SHARED_SEQUENCES, SHARED_STEAM

TICK = datetime.datetime(2026, 12, 7, 3, 0, tzinfo=datetime.UTC)  # a Monday, the training cron


def cli(selection: str, env: dict) -> float:
    """`dagster asset materialize` of ``selection``; its wall seconds."""
    started = time.perf_counter()
    command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize"]
    command += ["-m", "recsys_pipeline.definitions", "--select", selection]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{selection} failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--reuse", action="store_true", help="keep a whole run already there")
    parser.add_argument("--input", type=Path, default=SHARED_SEQUENCES, help="the CSV to copy")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    csv = scratch / "raw" / "sequences.csv"
    home = scratch / "home"
    env = {
        **os.environ,
        "RECSYS_DATA_DIR": str(scratch),
        "RECSYS_RAW_CSV": str(csv),
        "RECSYS_STEAM_CSV": str(SHARED_STEAM),
        "RECSYS_PROFILE": "cpu",
        "RECSYS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "DAGSTER_HOME": str(home),
    }
    os.environ.update(env)  # the in-process definitions and instance read the same settings

    import dagster as dg

    from recsys_pipeline.definitions import build_resources, defs
    from recsys_pipeline.settings import load_settings
    from recsys_pipeline_tests.helpers import observe_sources, stale_statuses

    if not (args.reuse and (scratch / "artifacts" / "evaluation").exists()):
        shutil.rmtree(scratch, ignore_errors=True)
        csv.parent.mkdir(parents=True)
        shutil.copyfile(args.input, csv)
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        print(f"0. whole graph: {cli('*', env):.0f} s", flush=True)
    instance = dg.DagsterInstance.from_config(str(home))
    resources = build_resources(load_settings())
    materializable = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    keys = [a.key.to_user_string() for a in materializable if a.is_materializable]

    ticks = iter(TICK + datetime.timedelta(minutes=n) for n in range(100))

    def observe_and_evaluate(cursor: object) -> tuple[set[str], object, float]:
        started = time.perf_counter()
        observe_sources(resources, instance)
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor, evaluation_time=next(ticks)
        )
        seconds = time.perf_counter() - started
        wanted = {
            r.key.to_user_string()
            for r in result.results
            if r.true_subset.size and r.key.to_user_string() in keys
        }
        return wanted, result.cursor, seconds

    def stale() -> set[str]:
        return {k for k, status in stale_statuses(defs, instance).items() if status == "STALE"}

    # what the daemon does from the start: the files observed, the conditions evaluated once
    observe_sources(resources, instance)
    cursor = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=TICK - datetime.timedelta(hours=1)
    ).cursor
    csv.write_bytes(csv.read_bytes())
    wanted, cursor, seconds = observe_and_evaluate(cursor)
    print(f"a. same bytes rewritten: requested {sorted(wanted) or 'nothing'}; {seconds:.1f} s")

    def sft_seconds() -> float:
        event = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
        return float(event.asset_materialization.metadata["wall_seconds"].value)

    trained = sft_seconds()
    again = cli("sft_checkpoint", env)
    event = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    reused = event.asset_materialization.metadata["reused"].value
    print(
        f"c. sft_checkpoint again, same config: reused={reused} (a no-op materialization of "
        f"version {event.asset_materialization.metadata['artifact_version'].value}); "
        f"{again:.0f} s for the CLI process against {trained:.0f} s of training; "
        f"ratio {trained / again:.0f}x"
    )

    lines = csv.read_text().splitlines()
    new_user = max(int(line.split(",", 1)[0]) for line in lines[1:]) + 1
    history = lines[-1].split(",", 1)[1]  # the last user's items, bought again by a new one
    with csv.open("a") as handle:
        handle.write(f"{new_user},{history}\n")
    wanted, cursor, seconds = observe_and_evaluate(cursor)
    print(f"b. one user appended: requested now {sorted(wanted)} ({seconds:.1f} s)")
    rerun = cli(",".join(sorted(wanted)), env) if wanted else 0.0
    marked = stale()
    downstream = set(keys) - {"raw_csv"}
    print(f"   those ran in {rerun:.0f} s; then stale: {sorted(marked)}")
    print(f"   raw_csv's downstream not rebuilt by them: {sorted(downstream - wanted)}")
    rest = cli(",".join(sorted(marked)), env) if marked else 0.0
    print(f"   re-running everything stale: {rest:.0f} s; whole re-run {rerun + rest:.0f} s")


if __name__ == "__main__":
    main()
