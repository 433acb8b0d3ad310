"""The exception handlers that answer a refused request: JSON, whatever the client sent, since a
refusal may echo the client's input or ids."""

from __future__ import annotations

import json
import math

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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
