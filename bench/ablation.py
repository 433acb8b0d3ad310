"""Ablation on the real data, CPU profile: the original report's table on our split.

Rows: random vs title vs profile initialisation; the four variants; the learned seen-item bias
off; the output layer in float32 instead of bf16 (the default on AMX CPUs); and +DPO (the pipeline's DPO settings on top of the title-initialised model, served only if
it wins on validation). Every row trains with the pipeline's SFT code (stage 1 + stage 2, best
epoch by validation NDCG@10) and is scored on the test targets (full ranking). Profiles are
built offline here (Steam matches + rule-based facts; Wikipedia and the LLM need the network).
One command, a markdown table out (each row is also printed as soon as it is measured, so a
failure late in the run loses nothing):

    .venv/bin/python bench/ablation.py [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import (
    SHARED_CSV,
    cpu_settings,
    pipeline_dpo_settings,
    real_data,
    title_vectors,
    train_and_test,
)

BASE = cpu_settings()
STEAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "steam" / "steam.csv"


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
                "RECSYS_STEAM_CSV": str(STEAM),
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
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args()
    split, vocab, titles = real_data()
    vectors = title_vectors(split, vocab, titles, BASE.hidden_size)
    table = [
        "| setting | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | epochs | minutes |",
        "|---|---|---|---|---|---|---|",
    ]

    def add_row(label: str, valid: float, test: dict, run: dict) -> None:
        table.append(
            f"| {label} | {valid:.4f} | {test['hr@10']:.4f} | {test['ndcg@10']:.4f} | "
            f"{test['mrr@10']:.4f} | {run['epochs']} | {run['minutes']:.1f} |"
        )
        print(table[-1], flush=True)

    for name in args.rows:
        settings = cpu_settings(**ROWS[name])
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        init = vectors
        if name.startswith("profile"):
            init = title_vectors(split, vocab, offline_profiles(titles), BASE.hidden_size)
        dpo = pipeline_dpo_settings() if name.endswith("+ DPO") else None
        run = train_and_test(split, vocab, init if settings.init == "text" else None, settings, dpo)
        run["minutes"] = (time.perf_counter() - started) / 60
        if dpo is None:
            add_row(name, run["valid"]["ndcg@10"], run["test"], run)
            continue
        add_row(name.removesuffix(" + DPO"), run["valid"]["ndcg@10"], run["sft_test"], run)
        add_row(f"{name} (served: {run['served']})", run["dpo_valid"]["ndcg@10"], run["test"], run)
    print("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
