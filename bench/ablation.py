"""Ablation on the real data, CPU profile: the original report's table on our split.

Rows: random vs title vs profile initialisation; the four variants; the learned seen-item bias
off; and +DPO (the pipeline's DPO settings on top of the title-initialised model, served only if
it wins on validation). Every row trains with the pipeline's SFT code (stage 1 + stage 2, best
epoch by validation NDCG@10) and is scored on the test targets (full ranking). Profiles are
built offline here (Steam matches + rule-based facts; Wikipedia and the LLM need the network).
One command, a markdown table out:

    .venv/bin/python bench/ablation.py [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyarrow as pa
from _common import cpu_settings, pipeline_dpo_settings, real_data, title_vectors, train_and_test

BASE = cpu_settings()
STEAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "steam" / "steam.csv"


def offline_profiles(vocab: object, titles: list[str]) -> list[str]:
    """Profiles as item_profiles builds them without network: Steam matches + rules."""
    from recsys_pipeline.assets.enrichment import SteamEnrichmentConfig
    from recsys_pipeline.enrichment.facts import rule_based_facts
    from recsys_pipeline.enrichment.profiles import merge_facts, profile_text
    from recsys_pipeline.enrichment.steam import load_steam_games, match_items, matches_table
    from recsys_pipeline.item_text import BUNDLED_MODEL, encode_texts, is_placeholder

    games = load_steam_games(STEAM).games
    threshold = SteamEnrichmentConfig().threshold
    matches = match_items(titles, games, threshold, lambda t: encode_texts(t, BUNDLED_MODEL))
    table = matches_table(vocab.item_ids, games, matches)
    steam = pa.Table.from_pandas(table, preserve_index=False).to_pylist()  # nulls as None
    profiles = []
    for title, row in zip(titles, steam, strict=True):
        facts = row if row["appid"] is not None else None
        merged = merge_facts(facts, rule_based_facts(title, None, facts))
        profiles.append("" if is_placeholder(title) else profile_text(title, merged))
    return profiles


ROWS = {
    "random init (sasrec_rope)": dict(init="random"),
    # one run gives two rows: the SFT model ("title init") and the served one after DPO
    "title init (sasrec_rope) + DPO": {},
    "profile init (sasrec_rope)": {},
    "title init, sasrec": dict(variant="sasrec"),
    "title init, sasrec_gate": dict(variant="sasrec_gate"),
    "title init, sasrec_moe": dict(variant="sasrec_moe"),
    "title init, no seen-item bias": dict(seen_item_bias=False),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args()
    split, vocab, titles = real_data()
    vectors = title_vectors(split, vocab, titles, BASE.hidden_size)
    rows: list[tuple[str, float, dict, dict]] = []  # (label, valid NDCG@10, test, run)
    for name in args.rows:
        settings = cpu_settings(**ROWS[name])
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        init = vectors
        if name.startswith("profile"):
            init = title_vectors(split, vocab, offline_profiles(vocab, titles), BASE.hidden_size)
        dpo = pipeline_dpo_settings() if name.endswith("+ DPO") else None
        run = train_and_test(split, vocab, init if settings.init == "text" else None, settings, dpo)
        run["minutes"] = (time.perf_counter() - started) / 60
        if dpo is None:
            rows.append((name, run["valid"]["ndcg@10"], run["test"], run))
            continue
        rows.append((name.removesuffix(" + DPO"), run["valid"]["ndcg@10"], run["sft_test"], run))
        valid = run["dpo_valid"]["ndcg@10"]
        rows.append((f"{name} (served: {run['served']})", valid, run["test"], run))
    print(
        "\n| setting | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | epochs | minutes |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, valid, test, run in rows:
        print(
            f"| {label} | {valid:.4f} | {test['hr@10']:.4f} | {test['ndcg@10']:.4f} | "
            f"{test['mrr@10']:.4f} | {run['epochs']} | {run['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
