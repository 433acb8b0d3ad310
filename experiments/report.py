"""docs/results.md, printed from the cached results: every figure there comes from a cache in
bench/results/ or experiments/results/ that records the command, commit, machine and date it was
measured with, and each section ends with that line. Nothing in the file is written by hand:

    .venv/bin/python -m experiments.report            # rewrite docs/results.md
    .venv/bin/python -m experiments.report --check    # exit 1 where the file differs
    .venv/bin/python -m experiments.report --print    # the text, on stdout

The reference, ablation and ideas tables come from the per-seed rows of experiments.references
through its own and experiments.ablation's table functions; the other caches are tables of rows
(``rows``: a list, or captioned lists), with undated ``notes``. A row may carry its own command,
commit, machine or date (a figure measured again elsewhere keeps its own row).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from experiments import ablation, references
from experiments.common import paired_gains, spread
from recsys_pipeline.monitoring.provenance import PROVENANCE, REPO, load_result

BENCH = REPO / "bench" / "results"
RESULTS = REPO / "experiments" / "results"
DOC = REPO / "docs" / "results.md"
ROW_PROVENANCE = (*PROVENANCE, "threads", "source")
BACKFILLED = "backfilled from the docs"  # a figure measured before its cache, copied from the docs
SOURCE = "Source: "  # how a provenance line begins (the test tells them from prose by it)
SEEDS = (1, 2, 3)
REFERENCE_TABLE = (
    "baselines",
    "rectools-defaults",
    "rectools-eSASRec-style",
    "recbole",
    "ours",
    "ours+variant=sasrec_rope",
)

INTRO = """# Results and benchmarks

Printed by `.venv/bin/python -m experiments.report` from the cached results in `bench/results/`
(performance) and `experiments/results/` (quality), which are committed: change a cache or the
generator, never this file (`--check` exits 1, and `recsys_pipeline_tests/test_results_doc.py`
fails, where the file differs from what the command prints). Under each table one line names the
command that measures its figures (`--table-only` or `--report-only` reprints a cache without
measuring), the commit, the machine (CPU, cores) and the date. Figures measured before the caches
existed were copied from the docs or the git history of their time, and their line says so
("backfilled"). All on the shared real data, on 2-core machines; two benchmarks at once on two
cores distort both, so time them alone.

The protocol: leave-one-out per user, test NDCG@10 etc. over all items, three training seeds a row
(the split fixed), mean ± std; a difference under two standard errors is reported as a tie, and a
single seed as "spread unknown" ([evaluation.md](evaluation.md))."""

METHOD = """How each reference runs (`.venv/bin/python -m experiments.references [--runs …] [--seeds 1 2
3] [--threads N] [--rerun] [--table-only]`; each run is cached per seed in
`experiments/results/references/`, so rows run one at a time across sessions):
- RecTools 0.19 `SASRecModel` (`experiments/rectools_runner.py`, in its own virtual environment
  `experiments/.rectools-venv`, torch 2.13.0 installed first): softmax loss, `session_max_len` 20,
  fit on the training parts, the epoch chosen by validation NDCG@10 (viewed items filtered, as the
  test is), the test top 10 from training part + validation item with `filter_viewed=True`, scored
  by our metrics code. Its defaults (256 wide, 4 heads, 3 epochs), and an eSASRec-style setting (2
  blocks, 128 wide, dropout 0.2, lr 1e-3, up to 200 epochs, stopped after 5 without gain). The
  runner checks that RecTools trains on our rows (the last 21 training items of each user, its
  `session_max_len + 1`; 200 users' sequences) and validates on every one of our validation targets.
- RecBole 1.2.1 SASRec (`experiments/recbole_baseline.py` writes the files,
  `experiments/recbole_runner.py` trains in `experiments/.recbole-venv`): as RecBole scores it, and
  the same trained model with the input sequence's items masked. Its runner checks every
  validation and test row against ours.
- Popularity and last-item transitions (no training: one run).
- Ours: the CPU profile's served model, and on it the ideas that need no retraining; an idea that
  needs retraining is a run named `ours+FIELD=VALUE[+FIELD=VALUE]` (CPU-profile SFT fields, or DPO
  fields as `dpo.NAME`, a list by commas: `ours+dpo.loss_weights=1,0.5`)."""


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def markdown(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(c, "–")) for c in columns) + " |")
    return lines


def source_line(fields: dict[str, Any], per_row: Iterable[str] = ()) -> str:
    """The provenance line: command · commit · machine · date (· threads · source); the fields
    in ``per_row`` are the table's columns instead."""
    per_row = [field for field in PROVENANCE if field in per_row]
    parts = [f"`{fields['command']}`"] if "command" not in per_row else []
    parts += [str(fields[field]) for field in PROVENANCE[1:] if field not in per_row]
    if per_row:
        parts.append(f"{', '.join(per_row)}: each row's")
    if fields.get("threads"):
        threads = fields["threads"]
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if fields.get("source"):
        parts.append(str(fields["source"]))
    return SOURCE + " · ".join(parts)


def merged(rows: Iterable[dict], command: str) -> dict[str, Any]:
    """One provenance for rows measured apart: each field's values, oldest first."""
    rows = list(rows)
    by_date = sorted(rows, key=lambda row: str(row["date"]))

    def values(field: str) -> list[str]:
        return list(dict.fromkeys(str(row[field]) for row in by_date if row.get(field)))

    dates = values("date")
    fields: dict[str, Any] = {
        "command": command,
        "commit": ", ".join(values("commit")),
        "machine": "; ".join(values("machine")),
        "date": dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}",
    }
    if threads := values("threads"):
        fields["threads"] = "/".join(threads)
    if any("backfilled" in str(row.get("source", "")) for row in rows):
        fields["source"] = "backfilled from git history where a row was cached before its fields"
    return fields


def tables(result: dict) -> list[str]:
    """A cache's tables, each with its provenance line (columns where its rows differ), then its
    notes."""
    rows = result["rows"]
    captioned = rows if isinstance(rows, dict) else {"": rows}
    defaults = {field: result[field] for field in ROW_PROVENANCE if field in result}
    lines: list[str] = []
    for caption, entries in captioned.items():
        entries = [{**defaults, **entry} for entry in entries]
        varying = [f for f in ROW_PROVENANCE if len({str(e.get(f)) for e in entries}) > 1]
        columns = [
            c for c in dict.fromkeys(c for e in entries for c in e) if c not in ROW_PROVENANCE
        ]
        columns += [f for f in ("commit", "machine", "date", "threads", "command") if f in varying]
        shared = {f: entries[0][f] for f in ROW_PROVENANCE if f in entries[0] and f not in varying}
        if "command" in varying:
            entries = [{**entry, "command": f"`{entry['command']}`"} for entry in entries]
        if caption:
            lines += [f"*{caption}*", ""]
        lines += markdown(entries, columns)
        sources = {str(entry.get("source")) for entry in entries}
        if "source" in varying and all(s.startswith(BACKFILLED) for s in sources):
            shared["source"] = f"{BACKFILLED} at each row's commit"
        lines += ["", source_line(shared, per_row=varying), ""]
    return lines + notes(result)


def notes(result: dict) -> list[str]:
    return [*(f"- {note}" for note in result.get("notes", [])), ""] if result.get("notes") else []


def cached_runs(names: Iterable[str]) -> dict[str, list[tuple[int, dict]]]:
    """Each run's cached rows by seed (the baselines have one run, seed 1)."""
    runs: dict[str, list[tuple[int, dict]]] = {}
    for name in names:
        for seed in SEEDS[:1] if name == "baselines" else SEEDS:
            path = references.cached(name, seed)
            if path.is_file():
                runs.setdefault(name, []).append((seed, json.loads(path.read_text())))
    return runs


def every_row(runs: dict[str, list[tuple[int, dict]]]) -> list[dict]:
    return [row for seeds in runs.values() for _, rows in seeds for row in rows.values()]


def references_section() -> list[str]:
    runs = cached_runs(REFERENCE_TABLE)
    command = (
        ".venv/bin/python -m experiments.references --table-only --runs "
        f"{' '.join(REFERENCE_TABLE)} --seeds 1 2 3"
    )
    lines = ["## Against the references", "", METHOD, ""]
    printed = references.table({name: [rows for _, rows in seeds] for name, seeds in runs.items()})
    table_end = printed.index(next(line for line in printed if line.startswith("\n")))
    lines += printed[:table_end]
    lines += ["", *(f"- {line.strip()}" for line in printed[table_end:]), ""]
    lines += [source_line(merged(every_row(runs), command)), ""]
    lines += ["*how the trained references ran*", ""]
    trained = [(name, seeds) for name, seeds in runs.items() if name in references.REFERENCE_RUNS]
    lines += markdown(training_rows(trained), TRAINING_COLUMNS)
    lines += ["", *notes(load_result(RESULTS / "references-notes.json"))]
    return lines


TRAINING_COLUMNS = [
    "run",
    "seed",
    "epochs",
    "best epoch",
    "valid NDCG@10 by epoch",
    "seconds an epoch",
    "split checked",
    "minutes",
    "machine",
]


def training_rows(runs: list[tuple[str, list[tuple[int, dict]]]]) -> list[dict]:
    """What each trained reference's cached run says of its training."""
    rows = []
    for name, seeds in runs:
        for seed, cached in seeds:
            for row in cached.values():
                run = row.get("run")
                if not run:
                    continue
                by_epoch = run.get("valid_ndcg@10_by_epoch") or []
                if len(by_epoch) > 4:
                    valid = f"{by_epoch[0]:.4f} → {max(by_epoch):.4f} (peak)"
                else:
                    valid = ", ".join(f"{v:.4f}" for v in by_epoch) or (
                        f"{run['best_valid_ndcg@10']:.4f} (best)"
                    )
                seconds = "–"
                if epoch_seconds := run.get("epoch_seconds"):
                    seconds = f"{min(epoch_seconds):.0f}–{max(epoch_seconds):.0f}"
                elif "median_epoch_seconds" in run:
                    seconds = f"{run['median_epoch_seconds']:.0f} (median)"
                elif "fit_seconds" in run and run.get("epochs"):
                    seconds = f"{run['fit_seconds'] / run['epochs']:.0f} (mean, fit / epochs)"
                rows.append(
                    {
                        "run": name,
                        "seed": seed,
                        "epochs": run.get("epochs"),
                        "best epoch": run.get("best_epoch"),
                        "valid NDCG@10 by epoch": valid,
                        "seconds an epoch": seconds,
                        "split checked": "yes" if run.get("split_checked") else "no",
                        "minutes": f"{row['minutes']:.1f}",
                        "machine": row["machine"],
                    }
                )
    return rows


def ablation_section() -> list[str]:
    measured: dict[str, list[dict]] = {}
    used: list[dict] = []
    for row, run in ablation.ROWS.items():
        for seed in SEEDS:
            names = [n for n in ablation.candidates(run) if references.cached(n, seed).is_file()]
            if names:
                rows = json.loads(references.cached(names[0], seed).read_text())
                measured.setdefault(row, []).append({**ablation.row_of(row, rows), "seed": seed})
                used.append(measured[row][-1])
    notes_cache = load_result(RESULTS / "ablation-notes.json")
    return [
        "## Ablation and ideas",
        "",
        "*the ablation: the SFT model of each setting (CPU profile, the model kept by validation "
        "NDCG@10), its SFT training minutes (DPO and evaluation excluded), and its test NDCG@10 "
        "against the profile's own row, seed by seed*",
        "",
        *ablation.table(measured),
        "",
        source_line(merged(used, notes_cache["command"])),
        "",
        *notes(notes_cache),
        *ideas_lines(),
    ]


def served_label(run: str) -> str:
    """The served model's row label in a run's cache (references.run_ours names them)."""
    if run == "ours":
        return references.SERVED
    return f"{references.SERVED_VARIANT}, {', '.join(run.split('+')[1:])}"


def ideas_lines() -> list[str]:
    ideas = load_result(RESULTS / "ideas.json")
    runs = cached_runs(
        dict.fromkeys(name for idea in ideas["rows"] for name in (idea["run"], idea["against"]))
    )
    by_seed = {name: dict(seeds) for name, seeds in runs.items()}
    rows, used, explained = [], [], []
    for idea in ideas["rows"]:
        label, base = idea.get("label") or served_label(idea["run"]), served_label(idea["against"])
        seeds = [s for s in by_seed.get(idea["run"], {}) if s in by_seed.get(idea["against"], {})]
        mine = [by_seed[idea["run"]][s][label] for s in seeds]
        theirs = [by_seed[idea["against"]][s][base] for s in seeds]
        used += mine + theirs
        row = {"idea": idea["idea"], "against": f"`{idea['against']}`", "seeds": len(seeds)}
        for part in ("valid", "test"):
            a = [r[part]["ndcg@10"] for r in mine]
            row[f"{part} NDCG@10"] = spread(a)
            row[f"{part} − against, by seed"] = paired_gains(
                a, [r[part]["ndcg@10"] for r in theirs]
            )
        row["minutes a run"] = f"{sum(r['minutes'] for r in mine) / len(mine):.1f}"
        rows.append(row)
        explained.append(f"- **{idea['idea']}**: {idea['note']}")
    columns = list(rows[0])
    command = f"{ideas['command']} --runs {' '.join(runs)}"
    served = [rows for _, rows in runs["ours"]]
    return [
        "*ideas to push ours: the served model of each run against the run named under against*",
        "",
        *markdown(rows, columns),
        "",
        source_line(merged(used, command)),
        "",
        *explained,
        "",
        "The blend's weight, seed by seed, as `--table-only --runs ours` prints it:",
        "",
        "```",
        *(line for line in references.against_served(served) if line.startswith("  w =")),
        "```",
        "",
        *notes(ideas),
    ]


def searches_section() -> list[str]:
    from experiments import search

    study = search.optuna.load_study(
        study_name=search.STUDY, storage=search.journal_storage(search.JOURNAL)
    )
    printed = [line for line in search.report(study) if line.startswith("|")]
    summary = load_result(RESULTS / "search.json")
    return [
        "## Settings searches",
        "",
        "### SFT settings (Optuna)",
        "",
        "*the best short trials, as `.venv/bin/python -m experiments.search --report-only` prints "
        "them from `experiments/results/search.journal`*",
        "",
        *printed,
        "",
        *tables(summary),
        "### DPO settings",
        "",
        *tables(load_result(RESULTS / "dpo_settings.json")),
    ]


def cache_section(title: str, caches: list[tuple[str, Path]]) -> list[str]:
    lines = [f"## {title}", ""]
    for heading, path in caches:
        lines += ([f"### {heading}", ""] if heading else []) + tables(load_result(path))
    return lines


def data_section() -> list[str]:
    from bench import long_ids

    result = load_result(long_ids.RESULT)
    return [
        *cache_section(
            "Data and inputs",
            [
                ("The data assets", BENCH / "data_pipeline.json"),
                ("Interaction logs", BENCH / "interaction_log.json"),
            ],
        ),
        "### One very long id",
        "",
        # its first line names the provenance, which the line below says; its ratio line is prose
        *(
            line if line.startswith("|") else f"\n{line}"
            for line in long_ids.table(dict(result))[1:]
        ),
        "",
        source_line(result),
        "",
    ]


def render() -> str:
    lines = [
        INTRO,
        "",
        *references_section(),
        *ablation_section(),
        *searches_section(),
        *cache_section(
            "Whole pipeline (`make run`)",
            [("", BENCH / "make_run.json")],
        ),
        *cache_section("Incremental re-runs", [("", BENCH / "incremental.json")]),
        *cache_section(
            "Model throughput",
            [
                ("The model family", BENCH / "model_throughput.json"),
                ("Training against RecBole", RESULTS / "recbole_throughput.json"),
            ],
        ),
        *cache_section("Serving", [("", BENCH / "serving_load.json")]),
        *data_section(),
        *cache_section(
            "Enrichment",
            [
                ("Speed", BENCH / "enrichment_speed.json"),
                ("Steam matching threshold", RESULTS / "steam_matching.json"),
                ("The text encoder", BENCH / "encoder_batch.json"),
            ],
        ),
    ]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 where docs/results.md differs")
    mode.add_argument("--print", action="store_true", help="print the text instead of writing it")
    args = parser.parse_args()
    text = render()
    if args.print:
        sys.stdout.write(text)
    elif args.check:
        current = DOC.read_text() if DOC.is_file() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), "docs/results.md", "printed", lineterm=""
            )
            sys.stdout.write("\n".join(list(diff)[:40]) + "\n")
            sys.exit(f"{DOC} differs from what the caches print: run python -m experiments.report")
    else:
        DOC.write_text(text)


if __name__ == "__main__":
    main()
