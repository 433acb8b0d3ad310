"""docs/results.md is what `python -m experiments.report` prints from the committed caches, every
cache records where its figures come from, and the file tells no dated story."""

from __future__ import annotations

import json
import re

import pytest

from recsys_pipeline.monitoring.provenance import PROVENANCE
from recsys_pipeline_tests.conftest import REPO

DOC = REPO / "docs" / "results.md"
CACHES = sorted(
    [
        *(REPO / "bench" / "results").glob("*.json"),
        *(REPO / "experiments" / "results").glob("*.json"),
        *(REPO / "experiments" / "results" / "references").glob("*.json"),
    ]
)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# words that date a sentence without a date, or point at a machine nobody can name later
RELATIVE = re.compile(
    r"\b(today|yesterday|the day before|later that day|this machine|this CPU)\b", re.IGNORECASE
)


def test_the_file_is_what_the_caches_print():
    from experiments import report

    assert DOC.read_text() == report.render(), (
        "docs/results.md differs from what the caches print: "
        "run .venv/bin/python -m experiments.report (or --check to see the difference)"
    )


def test_every_cache_records_command_commit_machine_and_date():
    assert len(CACHES) > 50, CACHES  # the reference rows and the benchmarks' caches are committed
    missing = []
    for path in CACHES:
        data = json.loads(path.read_text())
        # a reference run's cache holds one row per model, each with its own provenance
        records = list(data.values()) if path.parent.name == "references" else [data]
        for record in records:
            absent = [field for field in PROVENANCE if not record.get(field)]
            if absent:
                missing.append(f"{path.relative_to(REPO)}: {', '.join(absent)}")
    assert not missing, missing


def test_check_fails_on_a_stale_file_and_the_command_rewrites_it(tmp_path, monkeypatch, capsys):
    from experiments import report

    doc = tmp_path / "results.md"
    doc.write_text(DOC.read_text().replace("| popularity |", "| popular |", 1))
    monkeypatch.setattr(report, "DOC", doc)
    monkeypatch.setattr("sys.argv", ["report", "--check"])
    with pytest.raises(SystemExit) as failed:
        report.main()
    assert failed.value.code != 0
    assert "+| popularity |" in capsys.readouterr().out  # the difference is shown
    monkeypatch.setattr("sys.argv", ["report"])
    report.main()
    monkeypatch.setattr("sys.argv", ["report", "--check"])
    report.main()  # no exit: the file is what the caches print
    assert doc.read_text() == DOC.read_text()


def test_no_dated_narrative():
    """Dates live on the provenance lines (and in a table's date column), never in the prose."""
    from experiments.report import SOURCE

    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        if line.startswith(SOURCE):
            continue
        if line.startswith("|"):  # a date column's cells are the rows' own provenance
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            line = " | ".join(cell for cell in cells if not DATE.fullmatch(cell))
        assert not DATE.search(line), f"docs/results.md:{number}: a date outside provenance"
        assert not RELATIVE.search(line), f"docs/results.md:{number}: {RELATIVE.search(line)[0]!r}"
