"""The reference comparison's own logic (experiments/references.py): our split as the libraries get
it, their top-10 lists scored by our metrics, and the mean ± std table with its ties."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.common import is_tie, pipeline_dpo_settings, spread
from experiments.references import (
    SERVED,
    against_served,
    cached_run,
    metrics_of_lists,
    split_changes,
    split_frame,
    table,
    variant_changes,
)
from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import Split
from recsys_pipeline.monitoring.provenance import commit, machine

SPLIT = Split(full=Histories.from_lists([5, 6, 7], [[1, 2, 3, 4], [9, 8], [4, 3, 2]]))


def test_split_frame_is_our_split_in_order():
    frame = split_frame(SPLIT)
    assert frame.order.tolist() == list(range(9))
    parts = frame.groupby("user").part.apply(list).to_dict()
    assert parts == {
        "5": ["train", "train", "valid", "test"],
        "6": ["train", "train"],  # too short to split: all training
        "7": ["train", "valid", "test"],
    }
    train = frame[frame.part == "train"].groupby("user").item.apply(list).to_dict()
    assert train == {str(u): [str(i) for i in SPLIT.train[r]] for r, u in enumerate([5, 6, 7])}
    test = frame[frame.part == "test"]
    assert dict(zip(test.user, test.item, strict=True)) == {"5": "4", "7": "2"}


def test_lists_are_scored_by_our_metrics_and_a_missing_list_is_a_miss():
    perfect = metrics_of_lists({"5": ["4", "1"], "7": ["2"]}, SPLIT)
    assert perfect == {"hr@10": 1.0, "ndcg@10": 1.0, "mrr@10": 1.0}
    half = metrics_of_lists({"5": ["1", "4"]}, SPLIT)  # user 7 got no list
    assert half["hr@10"] == 0.5 and half["mrr@10"] == 0.25
    assert half["ndcg@10"] == pytest.approx(0.5 / np.log2(3))


def test_spread_and_ties():
    assert spread([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"
    assert spread([0.05]) == "0.0500"
    assert is_tie([0.070, 0.072, 0.071], [0.071, 0.069, 0.073])
    assert not is_tie([0.070, 0.071, 0.072], [0.060, 0.061, 0.062])
    assert not is_tie([0.07, 0.07, 0.07], [0.06])  # no spread at all: any difference counts


def test_table_gives_mean_and_std_and_the_ratio_to_the_best_reference():
    def rows(label: str, ndcg: float) -> dict:
        test = {"hr@10": 2 * ndcg, "ndcg@10": ndcg, "mrr@10": ndcg / 2}
        return {label: {"valid": {"ndcg@10": ndcg}, "test": test, "minutes": 1.0}}

    lines = table(
        {
            "baselines": [rows("popularity", 0.01)],
            "recbole": [rows("RecBole", 0.050), rows("RecBole", 0.052)],
            "ours": [rows("ours", 0.060), rows("ours", 0.062)],
        }
    )
    assert "| RecBole | 2 | 0.0510 ± 0.0014 | 0.1020 ± 0.0028 | 0.0510 ± 0.0014 |" in lines[3]
    assert lines[-2] == "\nbest reference (mean test NDCG@10): RecBole"
    assert lines[-1] == "ours: 1.20x the best reference (differs; bar 1.15x)"
    one_seed = table({"baselines": [rows("popularity", 0.01)], "ours": [rows("ours", 0.02)]})
    assert one_seed[-1] == "ours: 2.00x the best reference (one seed: spread unknown; bar 1.15x)"


def test_ideas_are_compared_with_the_served_model_seed_by_seed():
    def seed(served, idea_valid, idea_test):
        def row(valid, test):
            return {"valid": {"ndcg@10": valid}, "test": {"ndcg@10": test}}

        return {
            "ours, SFT (CPU profile)": row(0.05, 0.05),
            SERVED: row(served, served),
            "ours, served + mask": row(idea_valid, idea_test),
        }

    seeds = [seed(0.060, 0.0650, 0.061), seed(0.062, 0.0665, 0.061)]
    (line,) = against_served(seeds)
    assert line == (
        "ours, served + mask against the served model, NDCG@10 by seed: "
        "valid +0.0050, +0.0045 (differs); test +0.0010, -0.0010 (tie)"
    )
    (single,) = against_served(seeds[:1])
    assert single.endswith("test +0.0010 (one seed: spread unknown)")


def test_the_blend_prints_each_seeds_weight_and_its_validation_grid():
    def row(ndcg, **extra):
        return {"valid": {"ndcg@10": ndcg}, "test": {"ndcg@10": ndcg}, **extra}

    def grid(*scores):
        return {w: {"ndcg@10": s} for w, s in zip(("0.0", "0.05", "0.1"), scores, strict=True)}

    seeds = [
        {
            SERVED: row(0.070),
            "ours, served + blend": row(0.070, weight=0.0, grid=grid(0.070, 0.069, 0.06)),
        },
        {
            SERVED: row(0.071),
            "ours, served + blend": row(0.072, weight=0.05, grid=grid(0.071, 0.072, 0.06)),
        },
    ]
    line, first, second = against_served(seeds)
    assert line.startswith("ours, served + blend against the served model")
    assert first == "  w = 0 kept; valid NDCG@10 by w: 0.0 0.0700, 0.05 0.0690, 0.1 0.0600"
    assert second == "  w = 0.05 kept; valid NDCG@10 by w: 0.0 0.0710, 0.05 0.0720, 0.1 0.0600"


def test_a_variant_names_the_sft_settings_it_changes_and_a_bad_one_fails_before_training():
    assert variant_changes("ours") == {}
    assert variant_changes("ours+stage2_epochs=10+learning_rate=0.003") == {
        "stage2_epochs": "10",
        "learning_rate": "0.003",
    }
    for bad in ("rectools", "ours+stage2_epochs", "ours+no_such_field=1", "ours+stage2_epochs=x"):
        with pytest.raises(ValueError):
            variant_changes(bad)


def test_a_variant_changes_dpo_and_text_vector_settings_by_their_prefix_and_lists_by_commas():
    changes = variant_changes("ours+dpo.beta=0.2+dpo.loss_weights=1,0.5+embedding.text=profile")
    assert changes == {
        "dpo.beta": "0.2",
        "dpo.loss_weights": ["1", "0.5"],
        "embedding.text": "profile",
    }
    assert split_changes({"stage2_epochs": "10", **changes}) == {
        "sft": {"stage2_epochs": "10"},
        "dpo": {"beta": "0.2", "loss_weights": ["1", "0.5"]},
        "embedding": {"text": "profile"},
    }
    dpo = pipeline_dpo_settings(**split_changes(changes)["dpo"], seed=2)
    assert (dpo.beta, dpo.loss_weights, dpo.loss_type, dpo.seed) == (
        0.2,
        [1.0, 0.5],
        ["sigmoid", "sft"],  # the unchanged fields stay the pipeline's
        2,
    )
    # each fails before any training: an unknown DPO field, a bad value, a weight per loss missing
    for bad in ("ours+dpo.no_such=1", "ours+dpo.beta=-1", "ours+dpo.loss_weights=1,2,3"):
        with pytest.raises(ValueError):
            variant_changes(bad)


def test_a_retrained_variant_is_compared_on_the_seeds_it_ran():
    def row(ndcg):
        return {"valid": {"ndcg@10": ndcg}, "test": {"ndcg@10": ndcg}}

    seeds = [
        {SERVED: row(0.070), "ours, served, stage2_epochs=10": row(0.072)},
        {SERVED: row(0.071), "ours, served, stage2_epochs=10": row(0.073)},
        {SERVED: row(0.072)},  # the variant has not run on this seed
    ]
    (line,) = against_served(seeds)
    assert line == (
        "ours, served, stage2_epochs=10 against the served model, NDCG@10 by seed: "
        "valid +0.0020, +0.0020 (differs); test +0.0020, +0.0020 (differs)"
    )


def test_a_run_is_cached_with_its_minutes_and_machine_and_not_run_again(tmp_path, monkeypatch):
    from experiments import references

    monkeypatch.setattr(references, "CACHE", tmp_path)
    calls = []

    def run(split, seed, threads):
        calls.append((split, seed, threads))
        return {"ours": {"valid": {"ndcg@10": 0.07}, "test": {"ndcg@10": 0.06}}}

    rows = cached_run("ours", run, seed=2, rerun=False, data=("split",), threads=1)
    assert calls == [("split", 2, 1)]
    assert rows["ours"]["minutes"] >= 0 and rows["ours"]["machine"] == machine()
    # the command that makes the row again, the checkout, the date and the threads it ran with
    command = ".venv/bin/python -m experiments.references --runs ours --seeds 2 --threads 1"
    assert rows["ours"]["command"] == command and rows["ours"]["commit"] == commit()
    assert rows["ours"]["date"] and rows["ours"]["threads"] == 1
    assert "cores" in machine() and "family" in machine()
    assert [p.name for p in tmp_path.iterdir()] == ["ours-seed2.json"]  # no .partial left
    assert cached_run("ours", run, seed=2, rerun=False, data=("split",), threads=1) == rows
    assert len(calls) == 1
