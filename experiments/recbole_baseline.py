"""RecBole 1.2.1 SASRec on exactly our split: the pieces references.py runs it with, and a
training-throughput comparison against ours.

1. Writes our leave-one-out split as RecBole atomic files (train = every prefix of each training
   part, valid/test = one row per user) and the expected rows; RecBole's runner checks its split
   equals ours.
2. Installs RecBole in its own virtual environment (experiments/.recbole-venv, pins below) and trains
   SASRec (CE loss, 64 wide, 2 layers, 2 heads, max length 20, early stop on valid NDCG@10).

The quality comparison (three seeds, masked and unmasked) is references.py. Run alone, this
only times training, in one run: ours for N epochs (the pipeline's sft_checkpoint asset,
materialized in-process; the first epoch with the item rows frozen), RecBole for N epochs, ours
again; the ratio is ours (the mean of both) over RecBole's. The machine's speed drifts by up to
2x over hours, so only a ratio measured this way is comparable. The table is kept in
experiments/results/recbole_throughput.json with the command, commit, machine and date
(``--cache`` writes it elsewhere), which docs/results.md prints.

    .venv/bin/python -m experiments.recbole_baseline --throughput 2 [--cache PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TypedDict

from experiments.common import ExperimentData, ensure_venv
from recsys_pipeline.monitoring.provenance import command_line, save_result

EXPERIMENTS = Path(__file__).resolve().parent
CACHE = EXPERIMENTS / "results" / "recbole_throughput.json"
RECBOLE = "RecBole 1.2.1 SASRec"  # its row among the timed runs
VENV = EXPERIMENTS / ".recbole-venv"
RECBOLE_PINS = [
    "recbole==1.2.1",
    "numpy<2",
    "pandas<2.2",
    "scipy<1.13",
    "setuptools>=77.0.3,<81",
]
MAX_LENGTH = 20


class Timing(TypedDict):
    """A timed training run, as materialized_run and recbole_runner.py report it."""

    epochs: int
    median_epoch_seconds: float
    input_tokens_per_s: float
    targets_per_s: float


def write_atomic_files(split, folder: Path) -> Path:
    """RecBole's pre-split sequential format; returns the expected valid/test rows as JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def line(user: int, history: list[int], target: int) -> str:
        return f"{user}\t{' '.join(map(str, history[-MAX_LENGTH:]))}\t{target}\n"

    expected: dict[str, dict] = {"valid": {}, "test": {}}
    with (folder / "games.train.inter").open("w") as train_file:
        train_file.write(header)
        for row, user in enumerate(split.full.user_ids.tolist()):
            items = split.train[row].tolist()
            for end in range(1, len(items)):
                train_file.write(line(user, items[:end], items[end]))
    for stage, targets in (("valid", split.valid_target), ("test", split.test_target)):
        inputs = split.inputs_for(stage)
        with (folder / f"games.{stage}.inter").open("w") as handle:
            handle.write(header)
            for row, user in enumerate(split.full.user_ids.tolist()):
                if targets[row] < 0:
                    continue
                history = inputs[row].tolist()
                handle.write(line(user, history, int(targets[row])))
                expected[stage][str(user)] = [
                    [str(i) for i in history[-MAX_LENGTH:]],
                    str(int(targets[row])),
                ]
    path = folder.parent / "expected_split.json"
    path.write_text(json.dumps(expected))
    return path


def train_recbole(split, seed: int, epochs: int | None = None, threads: int | None = None) -> dict:
    """RecBole trained to convergence (test metrics unmasked and masked), or only timed over
    ``epochs``."""
    python = ensure_venv(VENV, RECBOLE_PINS)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads or os.cpu_count())}
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "result.json"
        expected = write_atomic_files(split, data / "games")
        runner = [
            str(python),
            str(EXPERIMENTS / "recbole_runner.py"),
            str(data),
            str(expected),
            str(out),
        ]
        runner += ["--seed", str(seed)] + ([] if epochs is None else ["--epochs", str(epochs)])
        subprocess.run(runner, check=True, cwd=tmp, env=env)  # its logs go to ./log
        return json.loads(out.read_text())


def throughput_only(data: ExperimentData, epochs: int) -> dict[str, Timing]:
    """The timed runs by trainer, in the order they ran (RECBOLE between ours); printed."""
    from experiments.common import PIPELINES, cpu_settings, embedding_settings, materialized_run
    from recsys_pipeline.assets.in_process import Pipeline

    # a pipeline of its own, and a seed per run, so that the latest model never has the same
    # settings: the pipeline would reuse it rather than train (and time) it again
    pipeline = Pipeline(
        data.pipeline.source, PIPELINES / "throughput", data.pipeline.steam, data.pipeline.profile
    )

    def ours(seed: int) -> dict:
        settings = cpu_settings(
            stage1_epochs=1, stage2_epochs=epochs - 1, patience=epochs, seed=seed
        )
        run = materialized_run(
            pipeline, settings, embedding_settings(settings.hidden_size), test=False
        )
        if "sft_checkpoint" in run["reused"]:
            raise SystemExit(f"the pipeline in {pipeline.root} reused a model: nothing was timed")
        return run

    runs = {"ours, before RecBole": ours(seed=1)}
    runs[RECBOLE] = train_recbole(data.split, seed=2020, epochs=epochs)
    runs["ours, after RecBole"] = ours(seed=2)
    print_throughput(runs)
    for key, ratio in ratios(runs).items():
        print(f"ours / RecBole, {key.removesuffix('_per_s')}/s: {ratio:.2f}x")
    print("(bar: 1.5x training tokens/s)")
    return runs


def ratios(runs: dict[str, Timing]) -> dict[str, float]:
    """Ours (the mean of its runs) over RecBole's, in input tokens/s and next-item targets/s."""
    recbole = runs[RECBOLE]
    ours = [run for name, run in runs.items() if name != RECBOLE]
    return {
        key: statistics.mean(run[key] for run in ours) / recbole[key]
        for key in ("input_tokens_per_s", "targets_per_s")
    }


def cache_rows(runs: dict[str, Timing], epochs: int) -> dict[str, list[dict[str, str]]]:
    """The cached table (docs/results.md prints it): the printed one and the ratios' row."""
    ratio = ratios(runs)
    caption = (
        f"same model size, {epochs} epochs each, evaluation excluded; ours before and after "
        "RecBole in the same run"
    )
    rows = [
        {
            "trainer": name,
            "epochs": str(t["epochs"]),
            "s/epoch": f"{t['median_epoch_seconds']:.1f}",
            "input tokens/s": f"{t['input_tokens_per_s']:,.0f}",
            "next-item targets/s": f"{t['targets_per_s']:,.0f}",
        }
        for name, t in runs.items()
    ]
    rows.append(
        {
            "trainer": "ratio ours / RecBole",
            "epochs": "",
            "s/epoch": "",
            "input tokens/s": f"**{ratio['input_tokens_per_s']:.2f}×**",
            "next-item targets/s": f"**{ratio['targets_per_s']:.2f}×**",
        }
    )
    return {caption: rows}


def print_throughput(runs: dict[str, dict]) -> None:
    print("| trainer | epochs | s/epoch | input tokens/s | next-item targets/s |")
    print("|---|---|---|---|---|")
    for name, t in runs.items():
        print(
            f"| {name} | {t['epochs']} | {t['median_epoch_seconds']:.1f} | "
            f"{t['input_tokens_per_s']:,.0f} | {t['targets_per_s']:,.0f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--throughput", type=int, metavar="EPOCHS", required=True)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the table is kept")
    args = parser.parse_args(argv)
    from experiments.common import experiment_data

    runs = throughput_only(experiment_data(), args.throughput)
    arguments = sys.argv[1:] if argv is None else argv
    command = command_line("experiments.recbole_baseline", arguments)
    save_result(args.cache, command, cache_rows(runs, args.throughput))


if __name__ == "__main__":
    main()
