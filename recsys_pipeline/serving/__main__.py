"""``python -m recsys_pipeline.serving``: the API with uvicorn on 127.0.0.1:8000 (HOST and PORT
change it; the rest of ``ServingSettings`` too), over $RECSYS_DATA_DIR/artifacts; a clear message
when nothing was built yet."""

from __future__ import annotations

import sys

from recsys_pipeline.serving.bundle import published_version
from recsys_pipeline.settings import load_serving_settings, load_settings


def main() -> None:
    import torch
    import uvicorn

    from recsys_pipeline.serving.app import create_app
    from recsys_pipeline.serving.reload import freeze_heap

    settings, serving = load_settings(), load_serving_settings()
    root = settings.artifacts_dir
    if published_version(root) is None:
        sys.exit(
            f"no served model under {root}: build the artifacts first (`make run`, or "
            "`dagster asset materialize -m recsys_pipeline.definitions --select '*faiss_index'`)"
        )
    torch.set_num_threads(serving.threads)
    # No access log: /metrics counts every request, and a log line each cost 10 % of throughput.
    app = create_app(root, poll_seconds=serving.poll_seconds, batch_wait_ms=serving.batch_wait_ms)
    freeze_heap()
    uvicorn.run(app, host=serving.host, port=serving.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
