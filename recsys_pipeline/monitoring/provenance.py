"""Where a measured figure comes from: the machine, the commit and the time it was measured, kept
beside every cached result of bench/ and experiments/ so that docs/results.md can say it."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

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


def provenance(command: str) -> dict[str, str]:
    """The fields every cached result records: command, commit, machine and UTC date."""
    return {
        "command": command,
        "commit": commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
    }
