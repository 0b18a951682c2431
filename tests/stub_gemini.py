"""A stub of the Gemini API on 127.0.0.1, enough for the real Gemini CLI to run a task:
``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`` answered as server-sent events.

Like stub_anthropic (whose markers it shares): with no marker in the prompt, a ``write_file``
call creating ``notes/<slug>.txt``, then a final text once the call's response comes back;
``[fail STATUS xK]`` answers the first K requests for that prompt with HTTP STATUS. Gemini CLI
reaches it through ``GOOGLE_GEMINI_BASE_URL``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stub_anthropic import FAIL_RE, slug

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class StubGemini:
    """Start with ``with StubGemini() as stub:``; ``stub.url`` is the base URL."""

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

    def __enter__(self) -> StubGemini:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, one response chunk or an error body) for one request."""
        contents = body.get("contents") or []
        prompt = _last_user_text(contents)
        fail = FAIL_RE.search(prompt)
        answered = any("functionResponse" in part for c in contents[-1:]
                       for part in c.get("parts") or ())
        if fail and (not fail.group(4) or answered):
            status, times = int(fail.group(1)), int(fail.group(2))
            with self._lock:
                served = self.failures_served.get(prompt, 0)
                if served < times:
                    self.failures_served[prompt] = served + 1
                    return status, {"error": {"code": status, "message": f"stub: HTTP {status}",
                                              "status": STATUS_NAMES.get(status, "UNKNOWN")}}
        if answered or not body.get("tools"):
            parts: list[dict[str, Any]] = [{"text": "Done: the note is written."}]
        else:
            parts = [{"functionCall": {"name": "write_file", "args": {
                "file_path": f"notes/{slug(prompt)}.txt", "content": f"written for: {prompt}\n"}}}]
        return 200, {"candidates": [{"content": {"role": "model", "parts": parts},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20,
                                       "totalTokenCount": 120},
                     "modelVersion": "gemini-2.5-pro"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send(404, "application/json", b"{}")

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with stub._lock:
                    stub.requests.append({"path": self.path, "body": body})
                if ":countTokens" in self.path:
                    self._send(200, "application/json", b'{"totalTokens": 100}')
                    return
                status, payload = stub.answer(body)
                data = json.dumps(payload)
                if status != 200 or "alt=sse" not in self.path:
                    self._send(status, "application/json", data.encode())
                    return
                self._send(200, "text/event-stream", f"data: {data}\r\n\r\n".encode())

        return Handler


def _last_user_text(contents: list[dict[str, Any]]) -> str:
    texts = [part["text"] for c in contents if c.get("role") == "user"
             for part in c.get("parts") or () if isinstance(part.get("text"), str)]
    return texts[-1] if texts else ""
