"""Benchmark: ours against the strongest fair references on exactly our split, several training
seeds a row (the split fixed), mean ± std; a difference under two standard errors is a tie.

- RecTools 0.19 SASRecModel (rectools_runner.py, its own virtual environment): softmax loss,
  session_max_len 20, fit on the training parts, the epoch chosen by validation NDCG@10 with
  viewed items filtered, the test top 10 from training part + validation item with
  filter_viewed=True. Its defaults (3 epochs), and an eSASRec-style setting (below). The runner
  checks that RecTools' training rows and validation targets are ours.
- RecBole 1.2.1 SASRec (recbole_baseline.py: CE loss, RecBole's size and defaults), as RecBole
  scores it and the same trained model with the sequence's items masked; its runner checks
  that every validation and test row is ours.
- Popularity and last-item transitions (no training, so one run).
- Ours: the CPU profile's served model (SFT, then DPO where it wins on validation), built by the
  pipeline's own assets (the graph materialized in-process up to the evaluation, the run's
  settings and seed as run config: common.materialized_run; its metrics are the evaluation's
  metrics.json), and on it the ideas that need no retraining: the seen items masked at scoring,
  and the blend with last-item transitions (weight chosen on the validation targets).
- Ours retrained with CPU-profile SFT settings changed (the ideas that need retraining): a run
  named ``ours+FIELD=VALUE[+FIELD=VALUE]``, e.g. ``ours+stage2_epochs=10``, where a field
  ``dpo.NAME`` changes the DPO settings and ``embedding.NAME`` the item text vectors instead
  (a list field takes commas: ``ours+dpo.loss_weights=1,0.5``); its served model is compared
  with the default's seed by seed. ``sft+...`` trains the same SFT model and stops there (the
  ablation's rows, experiments/ablation.py; an ``ours+...`` run of the same settings holds it
  too).

A run's rows are cached per seed in experiments/results/references/ (committed; --rerun redoes
them); the table is printed from the cache for the seeds asked, so the rows can be run one at a
time:

    .venv/bin/python -m experiments.references [--runs NAME ...] [--seeds 1 2 3] [--threads N]

Without --runs, every run above and every cached ``ours+...`` variant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.common import (
    cpu_settings,
    embedding_settings,
    ensure_venv,
    experiment_data,
    is_tie,
    materialized_run,
    paired_gains,
    pipeline_dpo_settings,
    spread,
)
from recsys_pipeline.monitoring.provenance import provenance

EXPERIMENTS = Path(__file__).resolve().parent
CACHE = EXPERIMENTS / "results" / "references"
RECTOOLS_VENV = EXPERIMENTS / ".rectools-venv"
RECTOOLS_PINS = ["rectools[torch]==0.19.0", "pytorch-lightning==2.5.2", "numpy<2", "pandas<2.4"]
RECTOOLS = {
    "defaults": {"epochs": 3, "patience": 3},
    # eSASRec's recipe on the plain SASRec blocks: two blocks, dropout 0.2, lr 1e-3, long
    # training stopped on validation NDCG@10.
    "eSASRec-style": {
        "epochs": 200,
        "patience": 5,
        "n_blocks": 2,
        "n_heads": 2,
        "n_factors": 128,
        "dropout_rate": 0.2,
        "lr": 1e-3,
        "batch_size": 256,
    },
}
REFERENCE_RUNS = ("baselines", "rectools-defaults", "rectools-eSASRec-style", "recbole")
RUNS = (*REFERENCE_RUNS, "ours")
SERVED = "ours, served (CPU profile)"  # the ideas are compared with this row
SERVED_VARIANT = "ours, served"  # + the changed settings


def split_frame(split) -> pd.DataFrame:
    """Every interaction with its global order and its part (train / valid / test) in our split."""
    full = split.full
    lengths = full.lengths
    from_end = np.repeat(full.offsets[1:], lengths) - np.arange(len(full.items))  # 1 = last
    splittable = np.repeat(split.splittable, lengths)
    part = np.select(
        [splittable & (from_end == 1), splittable & (from_end == 2)], ["test", "valid"], "train"
    )
    return pd.DataFrame(
        {
            "user": np.repeat(full.user_ids, lengths).astype(str),
            "item": full.items.astype(str),
            "order": np.arange(len(full.items)),
            "part": part,
        }
    )


def metrics_of_lists(lists: dict[str, list[str]], split) -> dict:
    """Our metrics of a library's top-10 lists on our test targets (no list: a miss)."""
    from recsys_pipeline.ranking.metrics import ranking_metrics

    has = split.splittable
    users, targets = split.full.user_ids[has].astype(str), split.test_target[has].astype(str)
    ranks = [
        lists.get(user, []).index(target) + 1 if target in lists.get(user, []) else np.inf
        for user, target in zip(users, targets, strict=True)
    ]
    return ranking_metrics(np.array(ranks))


def run_baselines(split, vocab, titles, pipeline, seed, threads) -> dict:
    from recsys_pipeline.ranking.baselines import popularity_scorer, transition_scorer
    from recsys_pipeline.ranking.protocol import evaluate_targets

    scorers = {
        "popularity": popularity_scorer(split.train, vocab),
        "last-item transition": transition_scorer(split.train, vocab),
    }
    stages = {s: evaluate_targets(scorers, split, vocab, stage=s) for s in ("valid", "test")}
    return {
        name: {"valid": stages["valid"][name].metrics(), "test": stages["test"][name].metrics()}
        for name in scorers
    }


def run_rectools(setting: str):
    def run(split, vocab, titles, pipeline, seed, threads) -> dict:
        python = ensure_venv(RECTOOLS_VENV, RECTOOLS_PINS)
        with tempfile.TemporaryDirectory() as tmp:
            interactions, settings, out = (Path(tmp) / n for n in ("in.csv", "s.json", "o.json"))
            split_frame(split).to_csv(interactions, index=False)
            settings.write_text(json.dumps({**RECTOOLS[setting], "seed": seed, "threads": threads}))
            runner = [str(python), str(EXPERIMENTS / "rectools_runner.py")]
            subprocess.run([*runner, str(interactions), str(settings), str(out)], check=True)
            result = json.loads(out.read_text())
        return {
            f"RecTools 0.19 SASRec, {setting} (viewed filtered)": {
                "valid": {"ndcg@10": result["best_valid_ndcg@10"]},
                "test": metrics_of_lists(result.pop("test_top"), split),
                "run": result,
            }
        }

    return run


def run_recbole(split, vocab, titles, pipeline, seed, threads) -> dict:
    from experiments.recbole_baseline import train_recbole

    result = train_recbole(split, seed, threads=threads)
    valid = {"ndcg@10": result["best_valid_ndcg@10"]}
    return {
        "RecBole 1.2.1 SASRec": {"valid": valid, "test": result["test"], "run": result},
        "RecBole 1.2.1 SASRec, history masked": {"valid": None, "test": result["test_masked"]},
    }


PREFIXES = ("dpo", "embedding")  # a field's group: FIELD is SFT's, dpo.FIELD and embedding.FIELD


def variant_changes(name: str) -> dict[str, str | list[str]]:
    """The settings an ``ours+FIELD=VALUE[+...]`` or ``sft+...`` run changes (none for ``ours``
    and ``sft``): SFT fields by name, DPO and text-vector fields as ``dpo.NAME`` and
    ``embedding.NAME``; a value with commas is a list. An ``sft`` run stops before DPO."""
    base, *parts = name.split("+")
    if base not in ("ours", "sft") or any("=" not in part for part in parts):
        raise ValueError(
            f"{name!r} is neither a run ({', '.join(RUNS)}) nor ours+FIELD=VALUE / sft+FIELD=VALUE"
        )
    changes = {
        field: value.split(",") if "," in value else value
        for field, value in (part.split("=", 1) for part in parts)
    }
    groups = split_changes(changes)
    if base == "sft" and groups["dpo"]:
        raise ValueError(f"{name!r}: an sft run trains no DPO, so it has no dpo.* settings")
    # an unknown field or a bad value fails here, before any training
    settings = cpu_settings(**groups["sft"])
    pipeline_dpo_settings(**groups["dpo"])
    embedding_settings(settings.hidden_size, **groups["embedding"])
    return changes


def split_changes(changes: dict) -> dict[str, dict]:
    """A variant's changes by group: ``sft``, and each prefix's fields without the prefix."""
    groups: dict[str, dict] = {"sft": {}, **{prefix: {} for prefix in PREFIXES}}
    for field, value in changes.items():
        prefix, dot, rest = field.partition(".")
        if dot and prefix in PREFIXES:
            groups[prefix][rest] = value
        else:
            groups["sft"][field] = value
    return groups


def run_ours(changes: dict[str, str | list[str]], dpo: bool = True):
    """Our model trained with ``changes``: SFT, then (with ``dpo``) DPO and the model served."""
    described = ", ".join(
        f"{field}={','.join(value) if isinstance(value, list) else value}"
        for field, value in changes.items()
    )
    groups = split_changes(changes)

    def run(split, vocab, titles, pipeline, seed, threads) -> dict:
        settings = cpu_settings(**groups["sft"], seed=seed)
        embedding = embedding_settings(settings.hidden_size, **groups["embedding"])
        dpo_settings = pipeline_dpo_settings(**groups["dpo"], seed=seed) if dpo else None
        # the pipeline's own assets train and evaluate it; the ideas that need no retraining
        # are measured on the default model only
        run = materialized_run(
            pipeline, settings, embedding, dpo_settings, ideas=dpo and not changes
        )
        sft_label = f"ours, SFT, {described}" if changes else "ours, SFT (CPU profile)"
        sft = {"valid": run["valid"], "test": run["sft_test"]}
        if not dpo:
            return {sft_label: {**sft, "run": run}}
        served = {"valid": run["served_valid"], "test": run["test"]}
        if changes:
            return {sft_label: sft, f"{SERVED_VARIANT}, {described}": {**served, "run": run}}
        ideas = run.pop("ideas")
        return {
            sft_label: sft,
            SERVED: {**served, "run": run},
            "ours, served + seen items masked": ideas["seen masked"],
            "ours, served + transition blend": ideas["transition blend"],
        }

    return run


RUNNERS = {
    "baselines": run_baselines,
    "rectools-defaults": run_rectools("defaults"),
    "rectools-eSASRec-style": run_rectools("eSASRec-style"),
    "recbole": run_recbole,
    "ours": run_ours({}),
}


def runner(name: str):
    """The run's function; an unknown name or a bad ours/sft+FIELD=VALUE raises ValueError."""
    if name in RUNNERS:
        return RUNNERS[name]
    return run_ours(variant_changes(name), dpo=name.split("+")[0] == "ours")


def cached(name: str, seed: int) -> Path:
    """Where a run's rows of one seed are kept."""
    return CACHE / f"{name}-seed{seed}.json"


def cached_run(name: str, run, seed: int, rerun: bool, data, threads: int) -> dict:
    path = cached(name, seed)
    if path.exists() and not rerun:
        return json.loads(path.read_text())
    print(f"== {name}, seed {seed}", flush=True)
    started = time.perf_counter()
    rows = run(*data, seed, threads)
    for row in rows.values():
        row["minutes"] = (time.perf_counter() - started) / 60
        command = f".venv/bin/python -m experiments.references --runs {name} --seeds {seed}"
        row.update(provenance(f"{command} --threads {threads}", threads=threads))
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(rows, indent=1))
    partial.replace(path)  # a crash mid-run leaves no cached row behind
    return rows


def table(runs: dict[str, list[dict]]) -> list[str]:
    """Rows as mean ± std over the cached seeds; ours against the best reference's test NDCG."""
    by_row: dict[str, dict[str, list]] = {}
    for name, seeds in runs.items():
        for rows in seeds:
            for label, row in rows.items():
                entry = by_row.setdefault(label, {"run": name, "valid": [], "test": [], "min": []})
                if row.get("valid"):
                    entry["valid"].append(row["valid"]["ndcg@10"])
                entry["test"].append(row["test"])
                entry["min"].append(row["minutes"])
    lines = [
        "| model | seeds | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, entry in by_row.items():
        test = {m: [t[m] for t in entry["test"]] for m in ("hr@10", "ndcg@10", "mrr@10")}
        minutes = sum(entry["min"]) / len(entry["min"])
        valid = spread(entry["valid"]) if entry["valid"] else "–"
        lines.append(
            f"| {label} | {len(entry['test'])} | {valid} | {spread(test['hr@10'])} | "
            f"{spread(test['ndcg@10'])} | {spread(test['mrr@10'])} | {minutes:.1f} |"
        )
    ndcg = {label: [t["ndcg@10"] for t in e["test"]] for label, e in by_row.items()}
    references = [label for label, e in by_row.items() if e["run"] in REFERENCE_RUNS]
    ours = [label for label, e in by_row.items() if is_ours(e["run"])]
    if references and ours:
        best = max(references, key=lambda label: np.mean(ndcg[label]))
        lines.append(f"\nbest reference (mean test NDCG@10): {best}")
        # the baselines have no seed, so one run is all there is to know of them
        best_known = by_row[best]["run"] == "baselines" or len(ndcg[best]) > 1
        for label in ours:
            ratio = np.mean(ndcg[label]) / np.mean(ndcg[best])
            verdict = "tie" if is_tie(ndcg[label], ndcg[best]) else "differs"
            if len(ndcg[label]) < 2 or not best_known:
                verdict = "one seed: spread unknown"
            lines.append(f"{label}: {ratio:.2f}x the best reference ({verdict}; bar 1.15x)")
    return lines


def is_ours(run: str) -> bool:
    return run.split("+")[0] == "ours"


def against_served(seeds: list[dict]) -> list[str]:
    """Each idea against the served model, seed by seed: ``seeds`` holds each seed's rows of
    every ours run (an idea that needs no retraining shares its seed's trained model)."""
    lines = []
    for label in dict.fromkeys(label for rows in seeds for label in rows):
        if label == SERVED or not label.startswith(SERVED_VARIANT):
            continue
        having = [rows for rows in seeds if label in rows]  # a variant may miss some seeds
        parts = []
        for part in ("valid", "test"):
            idea = [rows[label][part]["ndcg@10"] for rows in having]
            served = [rows[SERVED][part]["ndcg@10"] for rows in having]
            parts.append(f"{part} {paired_gains(idea, served)}")
        lines.append(f"{label} against the served model, NDCG@10 by seed: {'; '.join(parts)}")
        for rows in having:
            if "grid" in rows[label]:  # the blend: what each weight validated, and the one kept
                scores = ", ".join(
                    f"{w} {m['ndcg@10']:.4f}" for w, m in rows[label]["grid"].items()
                )
                lines.append(f"  w = {rows[label]['weight']:g} kept; valid NDCG@10 by w: {scores}")
    return lines


def main() -> None:
    variants = sorted({path.name.rsplit("-seed", 1)[0] for path in CACHE.glob("ours+*-seed*.json")})
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--runs", nargs="*", default=[*RUNS, *variants], help=f"{', '.join(RUNS)}, ours+FIELD=VALUE"
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="print what is cached")
    args = parser.parse_args()
    try:  # before any training: a bad variant name fails at once
        runners = {name: runner(name) for name in args.runs}
    except ValueError as error:  # pydantic's ValidationError is one too
        parser.error(str(error))
    import torch

    torch.set_num_threads(args.threads)  # the runs in this process; the libraries get it too
    data = None if args.table_only else experiment_data()
    runs: dict[str, list[dict]] = {}
    ours_by_seed: dict[int, dict] = {}
    for name in args.runs:
        seeds = args.seeds[:1] if name == "baselines" else args.seeds
        for seed in seeds:
            if args.table_only and not cached(name, seed).exists():
                continue
            rows = cached_run(name, runners[name], seed, args.rerun, data, args.threads)
            runs.setdefault(name, []).append(rows)
            if is_ours(name):
                ours_by_seed.setdefault(seed, {}).update(rows)
    print("\n".join(table(runs)))
    with_default = [rows for rows in ours_by_seed.values() if SERVED in rows]
    if with_default:
        print("\n".join(["", *against_served(with_default)]))


if __name__ == "__main__":
    main()
