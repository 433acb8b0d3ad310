"""The service's ASGI middleware: metrics and a JSON 500, the body size limit, HEAD as GET.
Pure ASGI classes: Starlette's BaseHTTPMiddleware runs each request through an extra task and
stream."""

from __future__ import annotations

import logging
import time

from fastapi.responses import JSONResponse

from recsys_pipeline.serving.metrics import Metrics

log = logging.getLogger(__name__)


class Measure:
    """Request counts and latency by endpoint and status, and a JSON 500 with no stack trace for
    anything that fails inside the service."""

    def __init__(self, app: object, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:  # never a stack trace to the client
            log.exception("internal error")
            self.metrics.errors.inc()
            if not status[0]:  # a response already under way can only be cut off
                await JSONResponse({"detail": "internal error"}, 500)(scope, receive, sending)
        route = scope.get("route")
        endpoint = route.path if route is not None else "unmatched"
        self.metrics.requests.labels(endpoint, str(status[0])).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return None


class LimitBody:
    """A request body over ``limit`` bytes is answered 413 before any parsing (declared by
    Content-Length or streamed in chunks)."""

    def __init__(self, app: object, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: object, send: object) -> None:
        response = JSONResponse({"detail": f"request body over {self.limit} bytes"}, 413)
        await response(scope, receive, send)


class HeadAsGet:
    """HEAD is answered as GET would be, status and headers (Content-Length included) without the
    body, as HTTP defines it; FastAPI's GET routes alone answer HEAD 405. A route without GET
    still answers 405."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def without_body(message: dict) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        return await self.app({**scope, "method": "GET"}, receive, without_body)
