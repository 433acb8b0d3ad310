"""Loopback fakes speaking the real protocols: the MediaWiki Action API and OpenAI chat
completions. Behaviour is scripted per request so tests can inject failures."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, quiet, and one way to answer with JSON."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may have given up (a timeout test)


class MediaWikiFake:
    """pages: title -> extract; redirects: from -> to. ``script`` yields a status per request
    (200, 429, 500 or "slow") before the normal answer."""

    def __init__(self, pages: dict[str, str], redirects: dict[str, str] | None = None) -> None:
        self.pages, self.redirects = pages, redirects or {}
        self.script: list[object] = []
        self.requests: list[dict] = []
        self.latency_s = 0.0
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                with fake.lock:
                    fake.requests.append({"params": query, "headers": dict(self.headers)})
                    step = fake.script.pop(0) if fake.script else 200
                time.sleep(fake.latency_s)
                if step == "slow":
                    time.sleep(2.0)
                    step = 200
                if step == 429:
                    return self.send_json(
                        429, {"error": {"code": "ratelimited"}}, {"Retry-After": "1"}
                    )
                if step == 500:
                    return self.send_json(500, {"error": {"code": "internal"}})
                self.send_json(200, fake.answer(query["titles"].split("|")))

        return Handler

    def answer(self, titles: list[str]) -> dict:
        """What the real API returns with formatversion=2 (normalized, redirects, pages)."""
        normalized, redirects, pages = [], [], []
        for title in titles:
            name = title[:1].upper() + title[1:]
            if name != title:
                normalized.append({"fromencoded": False, "from": title, "to": name})
            if name in self.redirects:
                redirects.append({"from": name, "to": self.redirects[name]})
                name = self.redirects[name]
            if name in self.pages:
                pages.append(
                    {
                        "pageid": abs(hash(name)) % 10**6,
                        "ns": 0,
                        "title": name,
                        "extract": self.pages[name],
                    }
                )
            else:
                pages.append({"ns": 0, "title": name, "missing": True})
        query = {"pages": pages}
        if normalized:
            query["normalized"] = normalized
        if redirects:
            query["redirects"] = redirects
        return {"batchcomplete": True, "query": query}


def strict_schema_error(response_format: dict) -> str | None:
    """Why the real API refuses a ``json_schema`` response format with a 400 (None: it does
    not), by the rules of structured outputs: a name of at most 64 letters, digits, ``_`` or
    ``-``; under ``strict``, an object at the root, and in every object
    ``additionalProperties: false`` and every property required."""
    spec = response_format.get("json_schema") or {}
    name = spec.get("name", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return f"Invalid 'response_format.json_schema.name': {name!r} does not match the pattern"
    if not spec.get("strict"):
        return None
    schema = spec.get("schema") or {}
    if schema.get("type") != "object":
        return f"Invalid schema for response_format '{name}': the root must be an object"
    for context, node in subschemas(schema, ()):
        if node.get("type") != "object":
            continue
        if node.get("additionalProperties") is not False:
            return (
                f"Invalid schema for response_format '{name}': In context={context}, "
                "'additionalProperties' is required to be supplied and to be false."
            )
        missing = sorted(set(node.get("properties", {})) - set(node.get("required", [])))
        if missing:
            return (
                f"Invalid schema for response_format '{name}': In context={context}, 'required' "
                f"is required to include every key in properties. Missing {missing[0]!r}."
            )
    return None


def subschemas(node: dict, context: tuple) -> list[tuple[tuple, dict]]:
    """(path, schema) of ``node`` and of every schema nested in it."""
    found = [(context, node)]
    for key in ("properties", "$defs"):
        for name, child in (node.get(key) or {}).items():
            found += subschemas(child, (*context, key, name))
    if isinstance(node.get("items"), dict):
        found += subschemas(node["items"], (*context, "items"))
    for i, child in enumerate(node.get("anyOf") or []):
        found += subschemas(child, (*context, "anyOf", str(i)))
    return found


class OpenAIFake:
    """Chat completions. ``respond(user_message) -> (status, content | None, refusal | None)``,
    or a fourth item, the finish reason (``"stop"`` otherwise: ``"length"``, ``"content_filter"``).
    A ``json_schema`` response format that strict mode refuses is answered 400, as the real API
    does, before ``respond`` is asked."""

    def __init__(self, respond: Callable[[str], tuple]) -> None:
        self.respond = respond
        self.requests: list[dict] = []
        self.latency_s = 0.0
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with fake.lock:
                    fake.requests.append({"body": body, "headers": dict(self.headers)})
                time.sleep(fake.latency_s)
                response_format = body.get("response_format") or {}
                if response_format.get("type") == "json_schema":
                    error = strict_schema_error(response_format)
                    if error is not None:
                        payload = {
                            "error": {
                                "message": error,
                                "type": "invalid_request_error",
                                "param": "response_format",
                                "code": None,
                            }
                        }
                        return self.send_json(400, payload)
                status, content, refusal, *finish = fake.respond(body["messages"][-1]["content"])
                if status != 200:
                    payload = {
                        "error": {
                            "message": "rate limited" if status == 429 else "error",
                            "type": "x",
                        }
                    }
                    return self.send_json(status, payload, {"retry-after-ms": "20"})
                self.send_json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": content,
                                    "refusal": refusal,
                                },
                                "finish_reason": finish[0] if finish else "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 20,
                            "total_tokens": 120,
                        },
                    },
                )

        return Handler
