"""The evaluation protocol of metrics.json: leave-one-out test targets, full ranking over all
items, every user that has a test target; the validation targets ranked the same way beside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.full_ranking import Ranked, Scorer, rank_users
from recsys_pipeline.ranking.metrics import TOP_K
from recsys_pipeline.ranking.topk_files import write_top_k_csv

PROTOCOL = "leave-one-out/full-ranking"
METRICS_FILE = "metrics.json"


def evaluate_targets(
    scorers: dict[str, Scorer],
    split: Split,
    vocab: ItemVocab,
    exclude_history: bool = False,
    stage: Literal["valid", "test"] = "test",
) -> dict[str, Ranked]:
    """Each scorer ranked on the ``stage`` targets (the test targets unless told) of every user
    that has one, from the history before that target."""
    has_target = split.splittable
    inputs = split.inputs_for(stage).rows_where(has_target)
    targets = (split.test_target if stage == "test" else split.valid_target)[has_target]
    return {
        name: rank_users(scorer, inputs, vocab, targets, TOP_K, exclude_history)
        for name, scorer in scorers.items()
    }


def write_evaluation(
    results: dict[str, Ranked], folder: Path, validation: dict[str, Ranked] | None = None
) -> dict:
    """metrics.json (the test metrics under "models"; the validation targets' under "validation"
    where given) and each model's test top-k lists."""
    n_users = {len(ranked.user_ids) for ranked in results.values()}
    if len(n_users) != 1:
        raise ValueError("models were evaluated on different users")
    report = {
        "protocol": PROTOCOL,
        "k": TOP_K,
        "n_users": n_users.pop(),
        "models": {name: ranked.metrics(TOP_K) for name, ranked in results.items()},
    }
    if validation is not None:
        report["validation"] = {name: ranked.metrics(TOP_K) for name, ranked in validation.items()}
    (folder / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n")
    for name, ranked in results.items():
        write_top_k_csv(folder / f"test_top{TOP_K}_{name}.csv", ranked.user_ids, ranked.top_items)
    return report
