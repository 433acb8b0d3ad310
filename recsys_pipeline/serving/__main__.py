"""``python -m recsys_pipeline.serving``: the API with uvicorn on 127.0.0.1:8000 (HOST and PORT
change it), over $RECSYS_DATA_DIR/artifacts; a clear message when nothing was built yet."""

from __future__ import annotations

import os
import sys

from recsys_pipeline.serving.bundle import published_version
from recsys_pipeline.settings import load_settings


def main() -> None:
    import torch
    import uvicorn

    from recsys_pipeline.serving.app import create_app, freeze_heap

    settings = load_settings()
    root = settings.artifacts_dir
    if published_version(root) is None:
        sys.exit(
            f"no served model under {root}: build the artifacts first (`make run`, or "
            "`dagster asset materialize -m recsys_pipeline.definitions --select '*faiss_index'`)"
        )
    host = os.environ.get("HOST") or "127.0.0.1"  # only this machine, unless told otherwise
    port = int(os.environ.get("PORT") or 8000)
    poll = float(os.environ.get("RECSYS_SERVE_POLL_SECONDS") or 5.0)
    # One thread per model pass: the passes and the HTTP handling share the cores.
    torch.set_num_threads(int(os.environ.get("RECSYS_SERVE_THREADS") or 1))
    wait = float(os.environ.get("RECSYS_SERVE_BATCH_WAIT_MS") or 2.0)
    # No access log: /metrics counts every request, and a log line each cost 10 % of throughput.
    app = create_app(root, poll_seconds=poll, batch_wait_ms=wait)
    freeze_heap()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
