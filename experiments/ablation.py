"""Ablation on the real data, CPU profile: the original report's table on our split.

Rows: random vs title vs profile initialisation; the four variants; the learned seen-item bias
off; the output layer in float32 instead of bf16 (the default on CPUs with fast bf16); a longer
history (max length 50); and +DPO on the profile's model (the pipeline's DPO settings, served
only where it wins on validation). Every row is the SFT model of one experiments/references.py
run, trained by the pipeline's own sft_checkpoint asset (stage 1 + stage 2, best epoch by
validation NDCG@10; materialized in-process, common.py) once per seed (the split fixed) and
scored on the test targets (full ranking); the table gives mean ± std over the seeds, and each
row's test NDCG@10 against the profile's own SFT row, seed by seed, with the two-standard-error
tie rule. Profiles are built offline (Steam matches and rule-based
facts; Wikipedia and the LLM need the network).

The rows share references.py's per-seed cache (experiments/results/references/): a row whose
``ours+...`` run is cached (SFT then DPO) takes its SFT model from there, otherwise it trains an
``sft+...`` run (SFT alone), so a row runs one seed at a time, and ``--table-only`` reprints what
is cached:

    .venv/bin/python -m experiments.ablation [--rows NAME ...] [--seeds 1 2 3] [--threads N] [--table-only]
"""

from __future__ import annotations

import argparse
import os

from experiments import references
from experiments.common import experiment_data, paired_gains, spread
from experiments.references import SERVED, cached_run, runner

DEFAULT = "title init (sasrec_gate), the CPU profile"
SERVED_ROW = "title init (sasrec_gate) + DPO, served"
# row -> the run whose SFT model it is (SERVED_ROW: the served model of the default run)
ROWS = {
    DEFAULT: "sft",
    SERVED_ROW: "ours",
    "random init (sasrec_gate)": "sft+init=random",
    "profile init (sasrec_gate)": "sft+embedding.text=profile",
    "title init, sasrec": "sft+variant=sasrec",
    "title init, sasrec_rope": "sft+variant=sasrec_rope",
    "title init, sasrec_moe": "sft+variant=sasrec_moe",
    "title init, no seen-item bias": "sft+seen_item_bias=false",
    "title init, float32 output layer": "sft+output_precision=float32",
    "title init, max length 50": "sft+max_history_length=50",
    # measured before sasrec_gate became the default (2026-12-06)
    "title init (sasrec_rope), max length 50": "sft+variant=sasrec_rope+max_history_length=50",
}


def candidates(run: str) -> list[str]:
    """The cached runs that hold a row's model, best first: an ``ours`` run trained the same SFT
    model before its DPO, so it serves an ``sft`` row as well."""
    base, _, rest = run.partition("+")
    return ["ours" + (f"+{rest}" if rest else ""), run] if base == "sft" else [run]


def row_of(row: str, rows: dict) -> dict:
    """One seed's ablation row from a cached run's rows: its SFT model, or the served one."""
    if row == SERVED_ROW:
        served = rows[SERVED]
        return {**served, "served": served["run"]["served"]}
    (label,) = [label for label in rows if label.startswith("ours, SFT")]
    run = next(value["run"] for value in rows.values() if "run" in value)
    return {**rows[label], "run": run}


def table(measured: dict[str, list[dict]]) -> list[str]:
    """Mean ± std a row; each row's test NDCG@10 gain over the default's on the seeds both ran."""
    lines = [
        "| setting | seeds | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | epochs "
        "| SFT training minutes | test NDCG@10 − the profile's, by seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    default = {seed["seed"]: seed["test"]["ndcg@10"] for seed in measured.get(DEFAULT, [])}
    for name, seeds in measured.items():
        test = {m: spread([s["test"][m] for s in seeds]) for m in ("hr@10", "ndcg@10", "mrr@10")}
        epochs = sum(s["run"]["epochs"] for s in seeds) / len(seeds)
        minutes = sum(s["run"]["train_seconds"] for s in seeds) / len(seeds) / 60
        label = name
        if name == SERVED_ROW:
            label += f" ({'/'.join(sorted({s['served'] for s in seeds}))})"
        paired = [s for s in seeds if s["seed"] in default]
        gain = "–"
        if name != DEFAULT and paired:
            row, base = [s["test"]["ndcg@10"] for s in paired], [default[s["seed"]] for s in paired]
            gain = paired_gains(row, base)
        lines.append(
            f"| {label} | {len(seeds)} | {spread([s['valid']['ndcg@10'] for s in seeds])} | "
            f"{test['hr@10']} | {test['ndcg@10']} | {test['mrr@10']} | {epochs:.1f} | "
            f"{minutes:.1f} | {gain} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--table-only", action="store_true", help="print what is cached")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = None
    measured: dict[str, list[dict]] = {}
    for row in args.rows:
        for seed in args.seeds:
            cached = [n for n in candidates(ROWS[row]) if references.cached(n, seed).exists()]
            if not cached and args.table_only:
                continue
            name = cached[0] if cached else ROWS[row]
            if data is None and not cached:
                data = experiment_data()
            rows = cached_run(name, runner(name), seed, False, data, args.threads)
            measured.setdefault(row, []).append({**row_of(row, rows), "seed": seed})
            print(f"{row}, seed {seed}: from {name}", flush=True)
    print("\n" + "\n".join(table(measured)))


if __name__ == "__main__":
    main()
