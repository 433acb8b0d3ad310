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

The parts: the request and response models (``schemas``), the micro-batcher (``batching``), hot
reload (``reload``), the middleware (``middleware``), the refusals' handlers (``refusals``) and
the metrics (``metrics``); this module wires them into the app.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_pipeline.serving.batching import Batcher
from recsys_pipeline.serving.bundle import Bundle, Recommendation, UnknownItems
from recsys_pipeline.serving.metrics import Metrics
from recsys_pipeline.serving.middleware import HeadAsGet, LimitBody, Measure
from recsys_pipeline.serving.refusals import invalid_request, refused
from recsys_pipeline.serving.reload import Server
from recsys_pipeline.serving.schemas import (
    MAX_BODY_BYTES,
    REFUSED_RECOMMENDATIONS,
    BatchRequest,
    BatchResponse,
    Health,
    Item,
    ItemId,
    ItemInfo,
    RecommendRequest,
    RecommendResponse,
    Refusal,
)


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
    answers: list[tuple[Recommendation, int] | None] = [None] * len(requests)
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


def as_json(model: BaseModel) -> Response:
    """The response as pydantic serializes it. The models are built here already, so FastAPI's
    second validation and encoding of a returned model would only repeat the work."""
    return Response(model.model_dump_json(), media_type="application/json")


def create_app(
    root: Path, poll_seconds: float = 5.0, poll: bool = True, batch_wait_ms: float = 2.0
) -> FastAPI:
    """The app over the artifacts under ``root`` ($RECSYS_DATA_DIR/artifacts); it polls for a
    newer published faiss_index every ``poll_seconds`` while it runs (``poll=False``: only when
    ``app.state.server.reload_if_newer()`` is called); ``batch_wait_ms``: see ``Batcher``."""
    server = Server(Path(root), poll_seconds, Metrics())
    batcher = Batcher(wait_ms=batch_wait_ms)

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
        (answer,) = await respond(bundle, [request], batcher)
        server.metrics.recommendations.inc()
        return as_json(answer)

    @app.post("/recommend/batch", response_model=BatchResponse, responses=REFUSED_RECOMMENDATIONS)
    async def recommend_batch(batch: BatchRequest) -> Response:
        bundle = server.bundle
        answers = await respond(bundle, batch.requests, batcher)
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
