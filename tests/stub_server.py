"""What the stub model APIs (stub_anthropic, stub_openai, stub_gemini) share: a threaded HTTP
server on 127.0.0.1 that records every request, and the markers a task's prompt uses to ask
for failures.

Markers: ``[fail STATUS xK]`` answers the first K requests for that prompt with HTTP STATUS
(``[fail 429 x2 after 1]`` adds ``retry-after: 1``); with ``late`` (``[fail 400 x1 late]``)
only requests that answer a tool call count, so the agent has done its first turn (and saved
its session) before it fails. Without a marker, each stub makes its agent write
``notes/<slug>.txt`` with one tool call, then answers with a final text.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAIL_RE = re.compile(r"\[fail (\d{3}) x(\d+)(?: after (\d+))?( late)?\]")


def slug(prompt: str) -> str:
    """The file name a prompt's note gets: ``notes/<slug>.txt``."""
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "note"


@dataclass
class Reply:
    status: int
    body: Any  # JSON, or bytes sent as they are
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def sse(events: list[tuple[str | None, Any]]) -> Reply:
    """A 200 whose body is server-sent events (``event:`` lines where a name is given)."""
    text = "".join((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
                   for name, data in events)
    return Reply(200, text.encode(), "text/event-stream")


class StubServer:
    """Start with ``with Stub() as stub:``; subclasses answer in ``handle``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients hang up early
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, method: str, path: str, body: Any) -> Reply:
        raise NotImplementedError

    def failure(self, prompt: str, *, answering_tool: bool) -> tuple[int, dict[str, str]] | None:
        """(status, headers) of the error a marker in ``prompt`` still asks for, or None."""
        fail = FAIL_RE.search(prompt)
        if not fail or (fail.group(4) and not answering_tool):
            return None
        with self._lock:
            served = self.failures_served.get(prompt, 0)
            if served >= int(fail.group(2)):
                return None
            self.failures_served[prompt] = served + 1
        return int(fail.group(1)), ({"retry-after": fail.group(3)} if fail.group(3) else {})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()
                           if k.lower() not in ("x-api-key", "authorization")}
                with stub._lock:
                    stub.requests.append({"method": self.command, "path": self.path,
                                          "headers": headers, "body": body})
                reply = stub.handle(self.command, self.path, body)
                data = reply.body if isinstance(reply.body, bytes) else \
                    json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = _serve  # noqa: N815

        return Handler
