"""The settings search (experiments/search.py): trials judged on validation (the pipeline
materialized up to sft_checkpoint, never further), kept in a journal that a later search
continues, the best printed as a run references.py accepts."""

from __future__ import annotations

from experiments.common import cpu_settings, pipeline_data
from experiments.references import variant_changes
from experiments.search import report, search
from recsys_pipeline.assets.in_process import Pipeline

TINY = dict(
    init="random",
    hidden_size=16,
    num_attention_heads=2,
    intermediate_size=32,
    stage2_epochs=1,
    output_precision="float32",
)


def test_a_search_starts_from_the_profile_and_a_later_one_continues_it(
    tmp_path, tiny_csv, monkeypatch
):
    def no_test_scoring(*args, **kwargs):
        raise AssertionError("a search scored the test targets")

    monkeypatch.setattr("recsys_pipeline.ranking.protocol.evaluate_targets", no_test_scoring)
    data = pipeline_data(Pipeline(tiny_csv, tmp_path / "pipeline"))
    journal = tmp_path / "search.journal"

    first = [t.params for t in search(data, 2, None, journal, TINY).trials]
    profile = cpu_settings()
    assert first[0] == {name: getattr(profile, name) for name in first[0]} != first[1]
    again = search(data, 1, None, journal, TINY)  # read back from the journal, then one more
    assert [t.params for t in again.trials[:2]] == first
    assert len(again.trials) == 3 and all(0 <= t.value <= 1 for t in again.trials)

    lines = report(again)
    best = max(again.trials, key=lambda t: t.value)
    command = lines[-1].split("--runs ")[1]
    assert set(variant_changes(command)) == set(best.params)  # a run references.py accepts
    assert lines[3].startswith(f"| {best.number} | {best.value:.4f} |")
    # every trial stopped at sft_checkpoint: no DPO model, no evaluation of the test targets
    artifacts = tmp_path / "pipeline" / "data" / "artifacts"
    assert (artifacts / "sft_checkpoint").is_dir()
    assert not any((artifacts / key).exists() for key in ("dpo_pairs", "evaluation"))
