"""The online recommendation service: an ASGI app over the pipeline's latest published model and
index (``app``), the in-memory bundle it serves (``bundle``), and ``python -m
recsys_pipeline.serving`` to run it with uvicorn."""
