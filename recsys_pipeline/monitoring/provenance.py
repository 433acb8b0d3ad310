"""Where a measured figure comes from: the machine, the commit and the time it was measured, kept
beside every cached result of bench/ and experiments/ so that docs/results.md can say it."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

REPO = Path(__file__).resolve().parents[2]


def machine() -> str:
    """The CPU a figure was measured on: the machines here differ twofold in speed, and "AMD EPYC"
    alone names both a Zen 3 and a Zen 5 (the family tells them apart)."""
    first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    info = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in first_cpu.splitlines())
    )
    return (
        f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')}, "
        f"model {info.get('model', '?')}), {os.cpu_count()} cores"
    )


def commit() -> str:
    """The checkout's short commit, with ``+changes`` when tracked files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def command_line(module: str, argv: Sequence[str]) -> str:
    """The command a cached result records: ``module`` run as the README runs it, with ``argv``
    quoted for a shell."""
    return shlex.join([".venv/bin/python", "-m", module, *argv])


def provenance(command: str, threads: int | None = None) -> dict[str, Any]:
    """The fields every cached result records: command, commit, machine and UTC date, and the
    threads it ran with where the command sets them (``--threads``)."""
    fields: dict[str, Any] = {
        "command": command,
        "commit": commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
    }
    if threads is not None:
        fields["threads"] = threads
    return fields


PROVENANCE = ("command", "commit", "machine", "date")


class Result(TypedDict):
    """A cached result: the provenance fields, the figures (``rows``) and undated notes."""

    command: str
    commit: str
    machine: str
    date: str
    threads: NotRequired[int]
    source: NotRequired[str]  # where a figure measured before these caches was copied from
    rows: Any
    notes: NotRequired[list[str]]


def save_result(
    path: Path,
    command: str,
    rows: Any,
    *,
    notes: Sequence[str] = (),
    threads: int | None = None,
) -> Result:
    """Writes ``rows`` (JSON-able figures) with the provenance of this run to ``path``, atomically:
    a crash mid-write leaves the previous result in place."""
    result = cast(Result, {**provenance(command, threads), "rows": rows})
    if notes:
        result["notes"] = list(notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    partial.replace(path)
    return result


def load_result(path: Path) -> Result:
    """A cached result; one without its provenance is an error naming the missing fields."""
    result = json.loads(path.read_text())
    missing = [field for field in PROVENANCE if not result.get(field)]
    if missing:
        raise ValueError(f"{path}: the cached result has no {', '.join(missing)}")
    return cast(Result, result)
