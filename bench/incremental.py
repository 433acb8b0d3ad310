"""Benchmark: what a re-run costs when nothing, or one user, changed (shared data, CPU profile).

In a scratch folder, with its own copy of the shared CSV and its own Dagster instance:
  0. the whole graph, as `make run` builds it (skipped with --reuse when it is already there);
  a. the input rewritten with the same bytes, observed, and the automation evaluated at a
     training cron tick: what is requested (nothing), and the seconds from the tick to that answer;
  c. sft_checkpoint materialized again with the same run config: recognised as unchanged
     (a no-op materialization of the same version), and its seconds against the first training's;
  b. one user appended: the requested runs, the set marked stale once they ran, against
     raw_csv's downstream, and the wall time of re-running everything that is stale.

The table is kept in bench/results/incremental.json with the command, commit, machine and date
(``--cache`` writes it elsewhere), which docs/results.md prints.

    .venv/bin/python -m bench.incremental --scratch /tmp/incremental [--reuse] [--cache PATH]
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
from typing import TypedDict

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result
from recsys_pipeline.settings import SHARED_SEQUENCES, SHARED_STEAM

TICK = datetime.datetime(2026, 12, 7, 3, 0, tzinfo=datetime.UTC)  # a Monday, the training cron
CACHE = REPO / "bench" / "results" / "incremental.json"


class Measurement(TypedDict):
    """What one run measured; asset lists in the graph's order, seconds of wall time."""

    whole_graph_seconds: float | None  # step 0; None: reused (--reuse)
    same_bytes_requested: list[str]
    same_bytes_seconds: float  # from the observation to the automation's answer
    sft_reused: bool
    sft_version_before: str
    sft_version_after: str
    sft_again_seconds: float  # the CLI process materializing sft_checkpoint again
    sft_training_seconds: float  # the training it would repeat (its metadata's wall_seconds)
    appended_requested: list[str]
    appended_decide_seconds: float
    appended_run_seconds: float
    stale: list[str]  # once the requested runs ran
    not_rebuilt: list[str]  # raw_csv's downstream that the requested runs did not rebuild
    stale_run_seconds: float


def cache_rows(measured: Measurement) -> list[dict[str, str]]:
    """The cached table (docs/results.md prints it): what each change made Dagster do."""

    def names(keys: list[str]) -> str:
        return ", ".join(keys) or "nothing"

    before, after = measured["sft_version_before"], measured["sft_version_after"]
    if measured["sft_reused"] and before == after:
        again = "a no-op materialization of the same version (`reused: true`)"
    else:
        again = f"`reused: {str(measured['sft_reused']).lower()}`, version {before} → {after}"
    trained, cli_seconds = measured["sft_training_seconds"], measured["sft_again_seconds"]
    stale, not_rebuilt = measured["stale"], measured["not_rebuilt"]
    fresh = [key for key in not_rebuilt if key not in stale]
    besides = [key for key in stale if key not in not_rebuilt]
    if not fresh and not besides:
        marked = f"stale: exactly raw_csv's downstream that those did not rebuild ({names(stale)})"
    else:
        marked = f"stale: {names(stale)}"
        if fresh:
            marked += (
                f"; of raw_csv's downstream that those did not rebuild, not stale: {names(fresh)}"
            )
        if besides:
            marked += (
                f"; stale besides raw_csv's downstream that those did not rebuild: {names(besides)}"
            )
    rest, whole = measured["stale_run_seconds"], measured["whole_graph_seconds"]
    return [
        {
            "change": "none: the input rewritten with the same bytes, observed, automation "
            "evaluated at a training cron tick",
            "what Dagster does": f"requests {names(measured['same_bytes_requested'])}",
            "seconds": f"{measured['same_bytes_seconds']:.1f}",
        },
        {
            "change": "sft_checkpoint materialized again with the same config",
            "what Dagster does": again,
            "seconds": f"{cli_seconds:.0f} (CLI process) vs {trained:.0f} training: "
            f"{trained / cli_seconds:.0f}×",
        },
        {
            "change": "one user appended (an existing user's items)",
            "what Dagster does": f"requests {names(measured['appended_requested'])} "
            f"({measured['appended_decide_seconds']:.1f} s to decide); they run in "
            f"{measured['appended_run_seconds']:.0f} s",
            "seconds": f"{measured['appended_run_seconds']:.0f}",
        },
        {"change": "…then", "what Dagster does": marked, "seconds": "–"},
        {
            "change": "re-running everything stale, against the whole graph again",
            "what Dagster does": "",
            "seconds": f"{rest:.0f}" if whole is None else f"{rest:.0f} vs {whole:.0f}",
        },
    ]


def cli(selection: str, env: dict) -> float:
    """`dagster asset materialize` of ``selection``; its wall seconds."""
    started = time.perf_counter()
    command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize"]
    command += ["-m", "recsys_pipeline.definitions", "--select", selection]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{selection} failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--reuse", action="store_true", help="keep a whole run already there")
    parser.add_argument("--input", type=Path, default=SHARED_SEQUENCES, help="the CSV to copy")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the table is kept")
    args = parser.parse_args(argv)
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

    whole = None
    if not (args.reuse and (scratch / "artifacts" / "evaluation").exists()):
        shutil.rmtree(scratch, ignore_errors=True)
        csv.parent.mkdir(parents=True)
        shutil.copyfile(args.input, csv)
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        whole = cli("*", env)
        print(f"0. whole graph: {whole:.0f} s", flush=True)
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

    def in_order(names: set[str]) -> list[str]:
        return [key for key in keys if key in names]

    measured: dict = {
        "whole_graph_seconds": whole,
        "same_bytes_requested": in_order(wanted),
        "same_bytes_seconds": seconds,
    }

    def sft_metadata() -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
        return {name: value.value for name, value in event.asset_materialization.metadata.items()}

    first = sft_metadata()
    trained = float(first["wall_seconds"])
    again = cli("sft_checkpoint", env)
    latest = sft_metadata()
    reused = latest["reused"]
    measured |= {
        "sft_reused": bool(reused),
        "sft_version_before": str(first["artifact_version"]),
        "sft_version_after": str(latest["artifact_version"]),
        "sft_again_seconds": again,
        "sft_training_seconds": trained,
    }
    print(
        f"c. sft_checkpoint again, same config: reused={reused} (a no-op materialization of "
        f"version {latest['artifact_version']}); "
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
    measured |= {
        "appended_requested": in_order(wanted),
        "appended_decide_seconds": seconds,
        "appended_run_seconds": rerun,
        "stale": in_order(marked),
        "not_rebuilt": in_order(downstream - wanted),
        "stale_run_seconds": rest,
    }
    arguments = sys.argv[1:] if argv is None else argv
    command = command_line("bench.incremental", arguments)
    save_result(args.cache, command, cache_rows(Measurement(**measured)))


if __name__ == "__main__":
    main()
