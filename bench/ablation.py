"""Ablation on the real data, CPU profile: the original report's table on our split.

Rows: random vs title initialisation; the four variants; the learned seen-item bias off.
Every row trains with the pipeline's SFT code (stage 1 + stage 2, best epoch by validation
NDCG@10) and is scored on the test targets (full ranking). One command, a markdown table out:

    .venv/bin/python bench/ablation.py [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import time

from _common import cpu_settings, real_data, title_vectors, train_and_test

BASE = cpu_settings()
ROWS = {
    "random init (sasrec_rope)": dict(init="random"),
    "title init (sasrec_rope)": {},
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
    results = {}
    for name in args.rows:
        settings = cpu_settings(**ROWS[name])
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = train_and_test(
            split, vocab, vectors if settings.init == "text" else None, settings
        )
        results[name]["minutes"] = (time.perf_counter() - started) / 60
    print(
        "\n| setting | valid NDCG@10 | test HR@10 | test NDCG@10 | test MRR@10 | epochs | minutes |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        t = r["test"]
        print(
            f"| {name} | {r['valid']['ndcg@10']:.4f} | {t['hr@10']:.4f} | {t['ndcg@10']:.4f} | "
            f"{t['mrr@10']:.4f} | {r['epochs']} | {r['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
