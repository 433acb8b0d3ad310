"""Ablation on the real data, CPU profile: the original report's table on our split.

Rows: random vs title vs profile initialisation; the four variants; the learned seen-item bias
off; the output layer in float32 instead of bf16 (the default on AMX CPUs); and +DPO (the pipeline's DPO settings on top of the title-initialised model, served only if
it wins on validation); a longer history (max length 50). Every row trains with the pipeline's
SFT code (stage 1 + stage 2, best epoch by validation NDCG@10) once per seed (the split fixed)
and is scored on the test targets (full ranking); the table gives mean ± std over the seeds. Profiles are
built offline here (Steam matches + rule-based facts; Wikipedia and the LLM need the network).
One command, a markdown table out (each row is also printed as soon as it is measured, so a
failure late in the run loses nothing):

    .venv/bin/python bench/ablation.py [--rows NAME ...] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import (
    SHARED_CSV,
    SHARED_STEAM,
    cpu_settings,
    pipeline_dpo_settings,
    real_data,
    spread,
    title_vectors,
    train_and_test,
)

BASE = cpu_settings()


def offline_profiles(titles: list[str]) -> list[str]:
    """The item_profiles artifact as the pipeline builds it without network (Steam matches and
    rule-based facts): the enrichment assets materialized on the real data in a scratch folder."""
    import dagster as dg

    from recsys_pipeline.definitions import build_resources, defs
    from recsys_pipeline.enrichment.profiles import read_profiles
    from recsys_pipeline.enrichment.text_vectors import profile_texts
    from recsys_pipeline.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "RECSYS_DATA_DIR": tmp,
                "RECSYS_RAW_CSV": str(SHARED_CSV),
                "RECSYS_STEAM_CSV": str(SHARED_STEAM),
                "RECSYS_OFFLINE": "1",
                "RECSYS_PROFILE": "cpu",
            }
        )
        dg.materialize(defs.assets, selection="*item_profiles", resources=build_resources(settings))
        return profile_texts(titles, read_profiles(settings.artifacts_dir / "item_profiles"))


ROWS = {
    "random init (sasrec_rope)": dict(init="random"),
    # one run gives two rows: the SFT model ("title init") and the served one after DPO
    "title init (sasrec_rope) + DPO": {},
    "profile init (sasrec_rope)": {},
    "title init, sasrec": dict(variant="sasrec"),
    "title init, sasrec_gate": dict(variant="sasrec_gate"),
    "title init, sasrec_moe": dict(variant="sasrec_moe"),
    "title init, no seen-item bias": dict(seen_item_bias=False),
    "title init, float32 output layer": dict(output_precision="float32"),
    "title init, max length 50": dict(max_history_length=50),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    args = parser.parse_args()
    split, vocab, titles = real_data()
    vectors = title_vectors(split, vocab, titles, BASE.hidden_size)
    table = [
        "| setting | seeds | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | epochs "
        "| minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def add_row(label: str, valid: list[float], test: list[dict], runs: list[dict]) -> None:
        metric = {m: spread([t[m] for t in test]) for m in ("hr@10", "ndcg@10", "mrr@10")}
        epochs = sum(run["epochs"] for run in runs) / len(runs)
        minutes = sum(run["minutes"] for run in runs) / len(runs)
        table.append(
            f"| {label} | {len(runs)} | {spread(valid)} | {metric['hr@10']} | "
            f"{metric['ndcg@10']} | {metric['mrr@10']} | {epochs:.1f} | {minutes:.1f} |"
        )
        print(table[-1], flush=True)

    for name in args.rows:
        init = vectors
        if name.startswith("profile"):
            init = title_vectors(split, vocab, offline_profiles(titles), BASE.hidden_size)
        runs = []
        for seed in args.seeds:
            settings = cpu_settings(**ROWS[name], seed=seed)
            print(f"== {name}, seed {seed}", flush=True)
            started = time.perf_counter()
            dpo = None
            if name.endswith("+ DPO"):
                dpo = pipeline_dpo_settings(seed=seed)
            run = train_and_test(
                split, vocab, init if settings.init == "text" else None, settings, dpo
            )
            run["minutes"] = (time.perf_counter() - started) / 60
            runs.append(run)
        valid = [run["valid"]["ndcg@10"] for run in runs]
        if not name.endswith("+ DPO"):
            add_row(name, valid, [run["test"] for run in runs], runs)
            continue
        add_row(name.removesuffix(" + DPO"), valid, [run["sft_test"] for run in runs], runs)
        served = "/".join(sorted({run["served"] for run in runs}))
        add_row(
            f"{name} (served: {served})",
            [run["served_valid"]["ndcg@10"] for run in runs],
            [run["test"] for run in runs],
            runs,
        )
    print("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
