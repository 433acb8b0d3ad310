"""Benchmark: our served model against RecBole 1.2.1 SASRec on exactly the same split.

1. Builds our leave-one-out split of the real data with the pipeline's own functions.
2. Writes it as RecBole atomic files (train = every prefix of each training part, valid/test =
   one row per user) and the expected rows; RecBole's runner checks its split equals ours.
3. Installs RecBole in its own virtual environment (bench/.recbole-venv, pins below) and trains
   SASRec (CE loss, 64 wide, 2 layers, 2 heads, max length 20, early stop on valid NDCG@10).
   The result is cached in bench/results/recbole_sasrec.json (--rerun-recbole to redo it).
4. Trains our model with the CPU profile (the same size) through the pipeline's training code.
5. Prints test HR/NDCG/MRR@10 side by side (+ popularity and last-item transitions), the NDCG
   ratio, and training throughput of both in real input tokens/s and next-item targets/s.

With --throughput N it only times training, in one run: ours for N epochs (the first with the
item rows frozen, as the pipeline trains), RecBole for N epochs, ours again; the ratio is ours
(the mean of both) over RecBole's. The machine's speed drifts by up to 2x over hours, so only a
ratio measured this way is comparable.

    .venv/bin/python bench/recbole_baseline.py [--rerun-recbole] [--recbole-only]
    .venv/bin/python bench/recbole_baseline.py --throughput 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED_CSV = REPO.parent / "shared" / "data" / "amazon-games" / "sequences.csv"
VENV = BENCH / ".recbole-venv"
RESULTS = BENCH / "results"
RECBOLE_PINS = [
    "recbole==1.2.1",
    "numpy<2",
    "pandas<2.2",
    "scipy<1.13",
    "setuptools>=77.0.3,<81",
]
MAX_LENGTH = 20


def ensure_recbole_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU wheel on disk, first
        subprocess.run([*pip, *RECBOLE_PINS], check=True)
    return python


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


def run_recbole(split, rerun: bool, epochs: int | None = None) -> dict:
    """RecBole trained to convergence (cached), or only timed over ``epochs`` (never cached)."""
    out = RESULTS / ("recbole_sasrec.json" if epochs is None else "recbole_throughput.json")
    if out.exists() and not rerun and epochs is None:
        return json.loads(out.read_text())
    python = ensure_recbole_venv()
    data = RESULTS / "recbole_data"
    expected = write_atomic_files(split, data / "games")
    runner = [str(python), str(BENCH / "recbole_runner.py"), str(data), str(expected), str(out)]
    subprocess.run(
        runner + ([] if epochs is None else ["--epochs", str(epochs)]), check=True, cwd=RESULTS
    )
    return json.loads(out.read_text())


def throughput_only(split, vocab, titles: list[str], epochs: int) -> None:
    from _common import cpu_settings, title_vectors, train_and_test

    settings = cpu_settings(stage1_epochs=1, stage2_epochs=epochs - 1, patience=epochs)
    vectors = title_vectors(split, vocab, titles, settings.hidden_size)
    runs = {"ours, before RecBole": train_and_test(split, vocab, vectors, settings)}
    runs["RecBole 1.2.1 SASRec"] = run_recbole(split, rerun=True, epochs=epochs)
    runs["ours, after RecBole"] = train_and_test(split, vocab, vectors, settings)
    print_throughput(runs)
    recbole = runs.pop("RecBole 1.2.1 SASRec")
    for key in ("input_tokens_per_s", "targets_per_s"):
        ours = statistics.mean(run[key] for run in runs.values())
        print(f"ours / RecBole, {key.removesuffix('_per_s')}/s: {ours / recbole[key]:.2f}x")
    print("(bar: 1.5x training tokens/s)")


def print_throughput(runs: dict[str, dict]) -> None:
    print("| trainer | epochs | s/epoch | input tokens/s | next-item targets/s |")
    print("|---|---|---|---|---|")
    for name, t in runs.items():
        print(
            f"| {name} | {t['epochs']} | {t['median_epoch_seconds']:.1f} | "
            f"{t['input_tokens_per_s']:,.0f} | {t['targets_per_s']:,.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rerun-recbole", action="store_true")
    parser.add_argument("--recbole-only", action="store_true")
    parser.add_argument("--throughput", type=int, metavar="EPOCHS", help="time training only")
    args = parser.parse_args()
    if not SHARED_CSV.is_file():
        sys.exit(f"needs the real data at {SHARED_CSV}")
    sys.path.insert(0, str(REPO))
    from recsys_pipeline.data.input_csv import parse_sequences_csv
    from recsys_pipeline.data.split import Split
    from recsys_pipeline.data.vocab import ItemVocab
    from recsys_pipeline.ranking.baselines import popularity_scorer, transition_scorer
    from recsys_pipeline.ranking.protocol import evaluate_targets

    RESULTS.mkdir(exist_ok=True)
    parsed = parse_sequences_csv(SHARED_CSV)
    split = Split(full=parsed.histories)
    vocab = ItemVocab(item_ids=np.array(sorted(parsed.titles)))
    titles = [parsed.titles[int(i)] for i in vocab.item_ids]
    if args.throughput:
        throughput_only(split, vocab, titles, args.throughput)
        return
    recbole = run_recbole(split, args.rerun_recbole)
    rows = {
        name: ranked.metrics()
        for name, ranked in evaluate_targets(
            {
                "popularity": popularity_scorer(split.train, vocab),
                "last-item transition": transition_scorer(split.train, vocab),
            },
            split,
            vocab,
        ).items()
    }
    rows["RecBole 1.2.1 SASRec"] = recbole["test"]
    throughput = {"RecBole 1.2.1 SASRec": recbole}
    if not args.recbole_only:
        from _common import cpu_settings, pipeline_dpo_settings, title_vectors, train_and_test

        settings = cpu_settings()
        vectors = title_vectors(split, vocab, titles, settings.hidden_size)
        ours = train_and_test(split, vocab, vectors, settings, pipeline_dpo_settings())
        rows["ours, SFT only (CPU profile)"] = ours["sft_test"]
        rows[f"ours, served: {ours['served']} (CPU profile)"] = ours["test"]
        throughput["ours (CPU profile)"] = ours

    print("| model | HR@10 | NDCG@10 | MRR@10 |")
    print("|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} |")
    print()
    print_throughput(throughput)
    if not args.recbole_only:
        ratio = ours["test"]["ndcg@10"] / recbole["test"]["ndcg@10"]
        print(f"\ntest NDCG@10 ratio ours / RecBole: {ratio:.2f}x (bar: 1.15x)")
        print(
            "training throughput ratio ours / RecBole: "
            f"{ours['input_tokens_per_s'] / recbole['input_tokens_per_s']:.2f}x input tokens/s, "
            f"{ours['targets_per_s'] / recbole['targets_per_s']:.2f}x targets/s (bar: 1.5x)"
        )


if __name__ == "__main__":
    main()
