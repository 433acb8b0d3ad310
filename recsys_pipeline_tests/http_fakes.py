"""Small HTTP servers on 127.0.0.1 for tests: real sockets, real protocol, no internet."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def serve(handler_class: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler_class`` on a free loopback port; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def file_server(
    files: dict[str, bytes], drop_first_after: int | None = None, log: list | None = None
) -> type[BaseHTTPRequestHandler]:
    """Serve ``files`` by path with Range support. The first GET of each file sends only
    ``drop_first_after`` bytes of its body and then closes the connection, like a flaky link."""
    dropped: set[str] = set()
    lock = threading.Lock()
    requests_log = log if log is not None else []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = files.get(self.path)
            requests_log.append((self.path, self.headers.get("Range")))
            if body is None:
                self.send_error(404)
                return
            start = 0
            range_header = self.headers.get("Range")
            if range_header:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with lock:
                drop = drop_first_after is not None and self.path not in dropped
                dropped.add(self.path)
            if drop:
                self.wfile.write(body[start : start + drop_first_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body[start:])

    return Handler
