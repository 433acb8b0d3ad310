"""Running a training stage from a JSON request, in-process or as ``python -m
recsys_pipeline.training.<stage> --request FILE`` under torchrun, reporting back to Dagster
through Pipes when a Pipes client started it (the main process talks; the others stay quiet)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from recsys_pipeline.training import distributed

REPORT_MESSAGE = "training_report"


@contextlib.contextmanager
def channel() -> Iterator[tuple[Callable[[str], None], Callable[[dict], None]]]:
    """(log, report): Dagster Pipes when launched by a Pipes client, else print."""
    if distributed.is_main() and os.environ.get("DAGSTER_PIPES_CONTEXT"):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            yield (
                pipes.log.info,
                lambda report: pipes.report_custom_message(
                    {"kind": REPORT_MESSAGE, "report": report}
                ),
            )
    elif distributed.is_main():
        yield print, lambda report: print(json.dumps(report))
    else:
        yield (lambda _line: None), (lambda _report: None)


def cli(
    run: Callable[[dict, Callable[[str], None]], object], argv: list[str] | None = None
) -> None:
    """Entry point of a training module: read the request, run it, report the result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--request", required=True, type=Path, help="JSON written by the asset")
    args = parser.parse_args(argv)
    request = json.loads(args.request.read_text())
    with channel() as (log, report):
        result = run(request, log)
        report(json.loads(result.to_json()))


def report_from(messages: list) -> dict:
    """The training report among the custom messages a Pipes subprocess sent."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("kind") == REPORT_MESSAGE:
            return message["report"]
    raise RuntimeError("the training processes ended without sending a report")
