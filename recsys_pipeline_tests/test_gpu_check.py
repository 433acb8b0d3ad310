"""The GPU check script is ready where no GPU is: its dry run executes every step on the CPU."""

from __future__ import annotations

import subprocess
import sys

from recsys_pipeline_tests.conftest import REPO


def test_the_gpu_script_dry_run_prints_every_row():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    steps = [line.split("|")[1].strip() for line in rows[1:]]  # after the header
    assert steps.count("1 model") == 4  # the four variants
    assert steps.count("2 attention") == 3 and steps.count("3 SFT epoch") == 1
    assert "identical lists for 100.00% of users" in rows[-1]
    assert "validation NDCG@10" in next(r for r in rows if "3 SFT epoch" in r)
