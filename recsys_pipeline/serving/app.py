"""The online recommendation API (FastAPI): top-k for a history sent now, or for a known user,
over the model and faiss index the pipeline last published, swapped for a newer version while it
runs.

Client input never gets a 500 or a stack trace, and every refusal is JSON: bad fields are 422s
naming the field (pydantic; the input echoed back with NaN, infinities and lone surrogates as
text), unknown items a 422 listing them, unknown users and items 404s (an integer id beyond int64
is simply not in an integer catalog), a body Python cannot read as JSON at all (not UTF-8, an
integer of over 4300 digits) a 400, bodies over 1 MiB a 413. A history that leaves fewer than k
items to recommend gets the shorter list. HEAD is answered as GET without the body; a path with a
trailing slash is a 404, never a redirect (which would echo the request's Host header).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import gc
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_pipeline.data.artifacts import ArtifactStore
from recsys_pipeline.serving.bundle import (
    Bundle,
    Recommendation,
    UnknownItems,
    load_bundle,
    published_version,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_K = 100
MAX_BATCH = 1024
ItemId = int | str  # the catalog's own ids: integers or strings (ASINs, SKUs)


class RecommendRequest(BaseModel):
    # strict: JSON true is no item id, user id or k, 5.0 no k and "yes" no boolean (pydantic's
    # lax mode took true as item 1); an id given as text is matched to the catalog's kind later
    model_config = ConfigDict(extra="forbid", strict=True)

    history: list[ItemId] | None = Field(
        None, description="item ids, oldest first; the most recent ones the model reads are used"
    )
    user_id: int | str | None = Field(None, description="a known user: their whole history is used")
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_history: bool = Field(True, description="never recommend an item of the history")

    @model_validator(mode="after")
    def _one_source(self) -> RecommendRequest:
        if (self.history is None) == (self.user_id is None):
            raise ValueError("give exactly one of history or user_id")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    requests: Annotated[list[RecommendRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Item(BaseModel):
    item_id: ItemId
    title: str
    score: float


class RecommendResponse(BaseModel):
    items: list[Item] = Field(
        description="best first; fewer than k where fewer items can be recommended (a history "
        "excluding nearly the whole catalog)"
    )
    model: str
    model_version: str
    fallback: str | None = Field(None, description="popularity: the history was empty")
    history_used: int = Field(description="how many of the most recent items the model read")
    truncated: bool = Field(description="the history was longer than the model reads")


class BatchResponse(BaseModel):
    responses: list[RecommendResponse]


class ItemInfo(BaseModel):
    item_id: ItemId
    title: str
    purchases: int


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded (answered 503): the last reload failed, the model before it serves"
    )
    model: str
    model_version: str
    index_version: str
    index_kind: str
    catalog_size: int
    known_users: int
    max_history_length: int
    loaded_at: float
    uptime_seconds: float
    last_error: str | None = Field(description="why the last reload failed; null once one works")


class Refusal(BaseModel):
    detail: str = Field(description="what was refused, and why")


class FieldError(BaseModel):
    """One field pydantic refused."""

    loc: list[str | int] = Field(description="where: body, then the path to the field")
    msg: str
    type: str
    input: Any = Field(None, description="what was sent (NaN, infinities: as text)")
    ctx: dict[str, Any] | None = None


class UnknownItemsError(BaseModel):
    loc: list[str | int] = Field(description='["body", "history"]')
    msg: str
    unknown: list[ItemId] = Field(description="the history's ids that the catalog does not hold")


class Invalid(BaseModel):
    detail: list[FieldError] | UnknownItemsError


# what the POST routes answer besides 200, declared so that the OpenAPI schema holds every answer
REFUSED_RECOMMENDATIONS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Refusal,
        "description": "not JSON that Python reads (not UTF-8, an integer of over 4300 digits)",
    },
    404: {"model": Refusal, "description": "an unknown user_id"},
    413: {"model": Refusal, "description": f"a body over {MAX_BODY_BYTES} bytes"},
    422: {"model": Invalid, "description": "invalid fields, or history items not in the catalog"},
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "recsys_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "recsys_request_seconds",
            "request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.recommendations = Counter(
            "recsys_recommendations", "top-k lists served", registry=self.registry
        )
        self.reloads = Counter(
            "recsys_model_reloads", "model loads", ["outcome"], registry=self.registry
        )
        self.errors = Counter(
            "recsys_internal_errors",
            "requests that failed inside the service",
            registry=self.registry,
        )
        self.loaded = Gauge(
            "recsys_model_loaded_timestamp",
            "when the served bundle was loaded",
            registry=self.registry,
        )


def freeze_heap() -> None:
    """Take everything alive now out of the cyclic garbage collector's reach. The libraries and
    a bundle for the shared data are ~450k objects; a full collection over them took 330 ms and
    showed as p99 spikes of 250-390 ms at concurrency 32. Unfreezing first lets a replaced
    bundle's reference cycles be collected once."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Server:
    """The served bundle, and its replacement when the pipeline publishes a newer index. A swap is
    one reference assignment: a request in flight keeps the bundle it started with."""

    def __init__(self, root: Path, poll_seconds: float, batch_wait_ms: float) -> None:
        self.store = ArtifactStore(root)
        self.poll_seconds = poll_seconds
        self.metrics = Metrics()
        self.started = time.time()
        self.bundle: Bundle = self._load(published_version(self.store.root))
        self.last_error: str | None = None
        self.batcher = Batcher(wait_ms=batch_wait_ms)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _load(self, version: str) -> Bundle:
        bundle = load_bundle(self.store, version)
        self.metrics.loaded.set(bundle.loaded_at)
        self.metrics.reloads.labels("ok").inc()
        return bundle

    def reload_if_newer(self) -> bool:
        """Load and swap in a newer published index; a failed load keeps the current bundle and
        is reported in /health."""
        version = published_version(self.store.root)
        if version is None or version == self.bundle.version:
            return False
        try:
            bundle = self._load(version)
        except Exception as exc:  # any failure to load keeps the working bundle
            self.metrics.reloads.labels("failed").inc()
            self.last_error = f"loading faiss_index version {version} failed: {exc}"
            log.warning(self.last_error)
            return False
        self.bundle, self.last_error = bundle, None
        if gc.get_freeze_count():  # the entry point froze the heap: refreeze it with the new bundle
            freeze_heap()
        log.info(f"now serving {bundle.model_name} {bundle.model_version} ({bundle.version})")
        return True

    def start_polling(self) -> None:
        def poll() -> None:
            while not self._stop.wait(self.poll_seconds):
                self.reload_if_newer()

        self._poller = threading.Thread(target=poll, name="reload", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)


@dataclass
class Waiting:
    """The requests one event loop has queued for its next pass."""

    jobs: collections.deque = field(default_factory=collections.deque)
    # the scheduled pass (a timer while it may wait), or the offloaded pass still running
    next: asyncio.Handle | asyncio.Future | None = None


class Batcher:
    """Concurrent requests share passes through the model. A request queues its histories and, if
    nothing is scheduled, schedules a pass. Under load (the last pass scored more than one
    history) the pass waits for as many histories as the last pass scored, at most ``wait_ms``; a
    lone request is scored at once. Measured at concurrency 8 (bench/serving_load.py): without
    the wait most passes scored 1 to 3 histories and p99 was 34 ms; with it, passes of 8.

    Small passes run on the event loop's own thread, because a worker thread competed with the
    loop for the GIL on every torch op: a pass of 4 histories took 11.7 ms in the service against
    4.9 ms alone. Passes of ``offload_at`` histories or more run on one worker thread, whose long
    kernels release the GIL, so the loop goes on reading requests: run on the loop, such passes
    kept it busy all the time and requests still being parsed waited (p99 9.8 s for batches of
    64 at concurrency 32, p50 1.2 s). Scheduling waits while an offloaded pass runs. A pass that
    fails is scored again request by request, so that only a request that fails gets an error."""

    def __init__(
        self, max_batch: int = MAX_BATCH, wait_ms: float = 2.0, offload_at: int = 256
    ) -> None:
        self.max_batch = max_batch
        self.wait = wait_ms / 1000
        self.offload_at = offload_at
        self.last_pass = 0
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pass")
        # per event loop (the ASGI test client runs one per thread), only while jobs wait or run
        self._waiting: dict[int, Waiting] = {}

    async def submit(
        self, bundle: Bundle, histories: list[list[ItemId]], k: int, exclude: bool
    ) -> list[Recommendation]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        waiting = self._waiting.setdefault(id(loop), Waiting())
        waiting.jobs.append((bundle, histories, k, exclude, done))
        if waiting.next is None:
            self._schedule(loop, waiting, self.wait if self.last_pass > 1 else 0)
        elif isinstance(waiting.next, asyncio.TimerHandle) and (
            sum(len(job[1]) for job in waiting.jobs) >= self.last_pass
        ):  # as many as last time: no reason to wait longer
            waiting.next.cancel()
            self._schedule(loop, waiting, 0)
        return await done

    def _schedule(self, loop: asyncio.AbstractEventLoop, waiting: Waiting, delay: float) -> None:
        waiting.next = loop.call_later(delay, self._pass, loop, waiting)

    def _pass(self, loop: asyncio.AbstractEventLoop, waiting: Waiting) -> None:
        taken, size = [], 0
        while waiting.jobs and size < self.max_batch:
            taken.append(waiting.jobs.popleft())
            size += len(taken[-1][1])
        self.last_pass = size
        groups: dict[tuple[int, bool], list] = {}
        for job in taken:
            groups.setdefault((id(job[0]), job[3]), []).append(job)
        if size >= self.offload_at:
            running = loop.run_in_executor(
                self.worker, self._score_all, list(groups.values()), True
            )
            running.add_done_callback(lambda _: self._after_pass(loop, waiting))
            waiting.next = running
            return
        self._score_all(list(groups.values()), False)
        self._after_pass(loop, waiting)

    def _after_pass(self, loop: asyncio.AbstractEventLoop, waiting: Waiting) -> None:
        # The rest a moment later, so that requests still climbing through their awaits (one
        # per loop iteration) reach `submit` first.
        if waiting.jobs:
            self._schedule(loop, waiting, self.wait)
        else:
            waiting.next = None
            del self._waiting[id(loop)]

    @staticmethod
    def _score_all(groups: list[list], offloaded: bool) -> None:
        """Score each group and hand every job its answer (or the error) on its own loop."""

        def deliver(done: asyncio.Future, answer: object, error: BaseException | None) -> None:
            if offloaded:
                done.get_loop().call_soon_threadsafe(settle, done, answer, error)
            else:
                settle(done, answer, error)

        def score(jobs: list) -> None:
            bundle, _, _, exclude, _ = jobs[0]
            histories = [h for job in jobs for h in job[1]]
            try:
                found = bundle.recommend(histories, max(job[2] for job in jobs), exclude)
            except Exception as exc:
                if len(jobs) == 1:
                    deliver(jobs[0][4], None, exc)
                    return
                # which request broke the pass is unknown: scored alone, only it gets the error
                for job in jobs:
                    score([job])
                return
            start = 0
            for job in jobs:
                answer = found[start : start + len(job[1])]
                deliver(job[4], answer, None)
                start += len(job[1])

        for jobs in groups:
            score(jobs)


def settle(done: asyncio.Future, answer: object, error: BaseException | None) -> None:
    if done.done():  # a client that went away cancelled its future
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(answer)


def history_of(bundle: Bundle, request: RecommendRequest) -> list[ItemId]:
    """The history a request asks about; a 404 or 422 naming what is unknown."""
    if request.user_id is not None:
        user = bundle.user_key(request.user_id)
        if user not in bundle.histories:
            raise HTTPException(404, f"user_id {request.user_id} is not a known user")
        return bundle.histories[user].tolist()
    try:
        return bundle.known_items(request.history)
    except UnknownItems as exc:
        detail = {"loc": ["body", "history"], "msg": str(exc), "unknown": exc.ids}
        raise HTTPException(422, detail) from None


async def respond(
    bundle: Bundle, requests: list[RecommendRequest], batcher: Batcher
) -> list[RecommendResponse]:
    """Each request answered from ``bundle``, through the batcher."""
    histories = [history_of(bundle, request) for request in requests]
    answers: list = [None] * len(requests)
    for exclude in (True, False):
        rows = [i for i, r in enumerate(requests) if r.exclude_history == exclude]
        if not rows:
            continue
        k = max(requests[i].k for i in rows)
        found = await batcher.submit(bundle, [histories[i] for i in rows], k, exclude)
        for row, recommendation in zip(rows, found, strict=True):
            answers[row] = (recommendation, requests[row].k)
    return [
        RecommendResponse(
            items=[
                Item(item_id=i, title=bundle.titles[i], score=s)
                for i, s in zip(r.item_ids[:k], r.scores[:k], strict=True)
            ],
            model=bundle.model_name,
            model_version=bundle.model_version,
            fallback=r.fallback,
            history_used=r.history_used,
            truncated=r.truncated,
        )
        for r, k in answers
    ]


def encodable(value: object) -> object:
    """``value`` with what a JSON answer cannot carry made text: non-finite floats (Python's JSON
    parser reads NaN, Infinity and 1e400) as "NaN", "Infinity" and "-Infinity", and strings with
    lone surrogates ("\\ud800" in a body), which UTF-8 cannot encode, backslash-escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with the echoed input encodable whatever the client sent."""
    return JSONResponse({"detail": encodable(jsonable_encoder(exc.errors()))}, 422)


async def refused(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's answer to an HTTPException, with the detail (which may quote the client's ids)
    encodable whatever the client sent."""
    detail = encodable(exc.detail)
    return await http_exception_handler(
        request, StarletteHTTPException(exc.status_code, detail, exc.headers)
    )


def as_json(model: BaseModel) -> Response:
    """The response as pydantic serializes it. The models are built here already, so FastAPI's
    second validation and encoding of a returned model would only repeat the work."""
    return Response(model.model_dump_json(), media_type="application/json")


class Measure:
    """ASGI middleware: request counts and latency by endpoint and status, and a JSON 500 with no
    stack trace for anything that fails inside the service. A pure ASGI class: Starlette's
    BaseHTTPMiddleware runs each request through an extra task and stream."""

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
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before any parsing
    (declared by Content-Length or streamed in chunks)."""

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
    """ASGI middleware: HEAD is answered as GET would be, status and headers (Content-Length
    included) without the body, as HTTP defines it; FastAPI's GET routes alone answer HEAD 405.
    A route without GET still answers 405."""

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


def create_app(
    root: Path, poll_seconds: float = 5.0, poll: bool = True, batch_wait_ms: float = 2.0
) -> FastAPI:
    """The app over the artifacts under ``root`` ($RECSYS_DATA_DIR/artifacts); it polls for a
    newer published faiss_index every ``poll_seconds`` while it runs (``poll=False``: only when
    ``app.state.server.reload_if_newer()`` is called); ``batch_wait_ms``: see ``Batcher``."""
    server = Server(Path(root), poll_seconds, batch_wait_ms)

    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        if poll:
            server.start_polling()
        yield
        server.stop_polling()

    app = FastAPI(
        title="recsys_pipeline recommendations",
        description="Next items for a video-game purchase history, from the pipeline's served model.",
        lifespan=lifespan,
        # Starlette's redirect of /health/ to /health builds its Location from the Host header
        redirect_slashes=False,
    )
    app.state.server = server

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, refused)
    app.add_middleware(Measure, metrics=server.metrics)
    app.add_middleware(LimitBody, limit=MAX_BODY_BYTES)
    app.add_middleware(HeadAsGet)

    @app.post("/recommend", response_model=RecommendResponse, responses=REFUSED_RECOMMENDATIONS)
    async def recommend(request: RecommendRequest) -> Response:
        bundle = server.bundle  # one bundle for the whole request, whatever swaps meanwhile
        (answer,) = await respond(bundle, [request], server.batcher)
        server.metrics.recommendations.inc()
        return as_json(answer)

    @app.post("/recommend/batch", response_model=BatchResponse, responses=REFUSED_RECOMMENDATIONS)
    async def recommend_batch(batch: BatchRequest) -> Response:
        bundle = server.bundle
        answers = await respond(bundle, batch.requests, server.batcher)
        server.metrics.recommendations.inc(len(answers))
        return as_json(BatchResponse(responses=answers))

    @app.get(
        "/items/{item_id}",
        response_model=ItemInfo,
        responses={404: {"model": Refusal, "description": "not in the catalog"}},
    )
    def item(item_id: ItemId) -> ItemInfo:
        bundle = server.bundle
        key = bundle.item_key(item_id)
        if key not in bundle.titles:
            raise HTTPException(404, f"item_id {item_id} is not in the catalog")
        return ItemInfo(
            item_id=key, title=bundle.titles[key], purchases=bundle.popularity_counts[key]
        )

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "degraded: the last reload failed"}},
    )
    def health(response: Response) -> Health:
        # There is always a model: the service does not start without one (__main__.py). A
        # failed reload leaves it serving an older model than the one published, which a probe
        # or load balancer must see without parsing the body.
        bundle, error = server.bundle, server.last_error
        response.status_code = 503 if error else 200
        return Health(
            status="degraded" if error else "ok",
            model=bundle.model_name,
            model_version=bundle.model_version,
            index_version=bundle.version,
            index_kind=bundle.index_kind,
            catalog_size=bundle.vocab.n_items,
            known_users=len(bundle.histories),
            max_history_length=bundle.max_history_length,
            loaded_at=bundle.loaded_at,
            uptime_seconds=time.time() - server.started,
            last_error=error,
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
