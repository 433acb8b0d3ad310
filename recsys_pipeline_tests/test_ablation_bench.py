"""The ablation (experiments/ablation.py): each row is the SFT model of a references.py run, read
from the same per-seed cache (an ours+ run before an sft+ one), with mean ± std and the gain over
the profile's own row seed by seed."""

from __future__ import annotations

import json
import sys

import pytest

from experiments import ablation, references
from experiments.ablation import DEFAULT, ROWS, SERVED_ROW, candidates, table
from experiments.common import pipeline_data
from experiments.references import SERVED, runner, variant_changes
from recsys_pipeline.assets.in_process import Pipeline


def test_every_row_is_a_valid_run_and_an_ours_run_serves_an_sft_row():
    for run in ROWS.values():
        runner(run)  # an unknown field or a bad value raises here
    assert candidates("sft") == ["ours", "sft"]
    assert candidates("sft+variant=sasrec") == ["ours+variant=sasrec", "sft+variant=sasrec"]
    assert candidates("ours") == ["ours"]
    for bad in ("sft+dpo.beta=0.2", "ours+embedding.dimensions=32", "ours+embedding.text=x"):
        with pytest.raises(ValueError):
            variant_changes(bad)


def test_an_sft_run_trains_no_dpo_and_carries_its_training_record(tmp_path, tiny_csv):
    data = pipeline_data(Pipeline(tiny_csv, tmp_path / "pipeline"))
    name = (
        "sft+init=random+hidden_size=16+intermediate_size=32+stage2_epochs=1"
        "+output_precision=float32"
    )
    result = runner(name)(*data, seed=1, threads=1)
    ((label, row),) = result.items()  # the SFT model alone: no served row
    assert label.startswith("ours, SFT, init=random")
    assert row["run"]["epochs"] == 1 and "dpo_valid" not in row["run"]
    assert row["test"] == row["run"]["sft_test"] == row["run"]["test"]
    # the pipeline stopped at its SFT model, and the row names the artifacts it read
    assert "sft_checkpoint" in row["run"]["artifact_versions"]
    assert not {"dpo_pairs", "dpo_checkpoint"} & set(row["run"]["artifact_versions"])


def seed_rows(sft: float, served: float | None = None, label: str = "ours, SFT (CPU profile)"):
    def metrics(ndcg: float) -> dict:
        return {"hr@10": 2 * ndcg, "ndcg@10": ndcg, "mrr@10": ndcg / 2}

    run = {"epochs": 10, "train_seconds": 300.0, "served": "dpo"}
    rows = {label: {"valid": metrics(sft + 0.01), "test": metrics(sft)}}
    if served is None:
        rows[label]["run"] = run
    else:
        rows[SERVED] = {"valid": metrics(served + 0.01), "test": metrics(served), "run": run}
    return rows


def test_rows_come_from_the_cache_an_ours_run_first_and_the_table_pairs_seeds(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(references, "CACHE", tmp_path)
    cached = {
        "ours-seed1": seed_rows(0.070, 0.072),
        "ours-seed2": seed_rows(0.071, 0.073),
        "sft-seed2": seed_rows(0.5),  # never read: the ours run of seed 2 holds the same model
        "sft+variant=sasrec-seed1": seed_rows(0.060, label="ours, SFT, variant=sasrec"),
        "ours+variant=sasrec-seed2": seed_rows(0.062, 0.064, label="ours, SFT, variant=sasrec"),
    }
    for name, rows in cached.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    rows = [DEFAULT, SERVED_ROW, "title init, sasrec", "title init, sasrec_moe"]
    argv = ["ablation.py", "--table-only", "--seeds", "1", "2", "--rows", *rows]
    monkeypatch.setattr(sys, "argv", argv)
    ablation.main()
    out = capsys.readouterr().out
    assert "title init, sasrec, seed 1: from sft+variant=sasrec" in out
    assert "title init, sasrec, seed 2: from ours+variant=sasrec" in out
    lines = out.strip().splitlines()[-3:]
    assert lines[0] == (
        f"| {DEFAULT} | 2 | 0.0805 ± 0.0007 | 0.1410 ± 0.0014 | 0.0705 ± 0.0007 | "
        "0.0353 ± 0.0004 | 10.0 | 5.0 | – |"
    )
    assert lines[1].startswith(f"| {SERVED_ROW} (dpo) | 2 | 0.0825 ± 0.0007 |")
    assert lines[1].endswith("| +0.0020, +0.0020 (differs) |")
    assert lines[2].endswith(
        "| 0.0610 ± 0.0014 | 0.0305 ± 0.0007 | 10.0 | 5.0 | -0.0100, -0.0090 (differs) |"
    )
    # the moe row has nothing cached: --table-only leaves it out rather than training it


def test_a_row_on_one_seed_says_its_spread_is_unknown():
    def seed(ndcg: float, number: int) -> dict:
        metrics = {"hr@10": ndcg, "ndcg@10": ndcg, "mrr@10": ndcg}
        run = {"epochs": 4, "train_seconds": 60.0}
        return {"valid": metrics, "test": metrics, "run": run, "seed": number}

    lines = table({DEFAULT: [seed(0.07, 1), seed(0.07, 2)], "random init": [seed(0.04, 2)]})
    assert lines[-1].endswith("| 4.0 | 1.0 | -0.0300 (one seed: spread unknown) |")
