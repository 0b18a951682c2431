"""A stub of Anthropic's Messages API on 127.0.0.1, enough for the real Claude Code to run a
task: ``POST /v1/messages`` answered in the streaming (SSE) format, or as one JSON message.

What it answers depends on markers in the task's prompt (the first user message):

- no marker: a ``Write`` tool call (opencode's ``write``) creating ``notes/<slug>.txt`` in the
  working directory (read from the system prompt), then a final text once the tool result
  comes back;
- ``[fail STATUS xK]`` (``retry-after`` R with ``[fail 429 x2 after 1]``): the first K
  requests for that prompt get HTTP STATUS with an Anthropic error body; with ``late``
  (``[fail 400 x1 late]``) only requests that carry a tool result count, so the agent has
  done its first turn (and saved its session) before it fails;
- ``[deny]``: a ``Bash`` tool call, which ``--allowedTools Write`` does not allow.

Every request is recorded (path, headers without the key, body) so tests can look at what
Claude Code sent: ``--resume`` is visible as the earlier conversation coming back.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAIL_RE = re.compile(r"\[fail (\d{3}) x(\d+)(?: after (\d+))?( late)?\]")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 429: "rate_limit_error", 529: "overloaded_error",
               500: "api_error"}


class StubAnthropic:
    """Start with ``with StubAnthropic() as stub:``; ``stub.url`` is the base URL."""

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

    def __enter__(self) -> StubAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def message_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith("/v1/messages")
                and not r["path"].startswith("/v1/messages/count_tokens")]

    # -- deciding an answer ------------------------------------------------------------------
    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """(status, headers, message or error body) for one /v1/messages request."""
        messages = body.get("messages") or []
        prompt = _first_user_text(messages)
        fail = FAIL_RE.search(prompt)
        if fail and (not fail.group(4) or _has_tool_result(_last_user(messages))):
            status, times = int(fail.group(1)), int(fail.group(2))
            with self._lock:
                served = self.failures_served.get(prompt, 0)
                if served < times:
                    self.failures_served[prompt] = served + 1
                    headers = {"retry-after": fail.group(3)} if fail.group(3) else {}
                    return status, headers, {"type": "error", "error": {
                        "type": ERROR_TYPES.get(status, "api_error"),
                        "message": f"stub: HTTP {status}"}}
        if not body.get("tools") or _has_tool_result(_last_user(messages)):
            return 200, {}, _message([{"type": "text", "text": "Done: the file is written."}],
                                     "end_turn")
        if "[deny]" in prompt:
            call = {"name": "Bash", "input": {"command": "python3 -c \"open('denied.txt', 'w')\"",
                                              "description": "make a file"}}
        else:
            # Claude Code's tool is Write(file_path), opencode's write(filePath).
            write = next((t for t in body["tools"] if t.get("name", "").lower() == "write"), {})
            props = (write.get("input_schema") or {}).get("properties") or {}
            key = "filePath" if "filePath" in props else "file_path"
            path = f"{_working_directory(body)}/notes/{slug(prompt)}.txt"
            call = {"name": write.get("name", "Write"),
                    "input": {key: path, "content": f"written for: {prompt}\n"}}
        return 200, {}, _message([{"type": "tool_use", "id": "toolu_stub_1", **call}],
                                 "tool_use")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._record(None)
                self._reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                             "message": "stub"}}, {})

            do_HEAD = do_GET  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                self._record(body)
                path = self.path.split("?")[0]
                if path == "/v1/messages/count_tokens":
                    self._reply(200, {"input_tokens": 100}, {})
                    return
                if path != "/v1/messages":
                    self._reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                                 "message": "stub"}}, {})
                    return
                status, headers, payload = stub.answer(body)
                if status != 200 or not body.get("stream"):
                    self._reply(status, payload, headers)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in _sse_events(payload):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

            def _record(self, body: Any) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()
                           if k.lower() not in ("x-api-key", "authorization")}
                with stub._lock:
                    stub.requests.append({"method": self.command, "path": self.path,
                                          "headers": headers, "body": body})

        return Handler


def slug(prompt: str) -> str:
    """The file name a prompt's note gets: ``notes/<slug>.txt``."""
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "note"


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or () if b.get("type") == "text"]
        # Claude Code puts reminders before the prompt; the prompt is the last text block.
        if texts:
            return texts[-1]
    return ""


def _last_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    users = [m for m in messages if m.get("role") == "user"]
    return users[-1:]


def _has_tool_result(messages: list[dict[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list)
               and any(b.get("type") == "tool_result" for b in m["content"]) for m in messages)


def _working_directory(body: dict[str, Any]) -> str:
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or ()]
    for m in body.get("messages") or ():
        content = m.get("content")
        texts += [content] if isinstance(content, str) else [
            b.get("text", "") for b in content or () if isinstance(b, dict)]
    for text in texts:
        found = re.search(r"[Ww]orking directory: (\S+)", text)
        if found:
            return found.group(1)
    raise ValueError("stub: no working directory in the request")


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {"id": "msg_stub", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": content, "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 120, "output_tokens": 30, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 0}}


def _sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    out = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            out.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                "content_block": {"type": "text", "text": ""}}))
            out.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                "delta": {"type": "text_delta",
                                                          "text": block["text"]}}))
        else:
            out.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                "content_block": {**block, "input": {}}}))
            out.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                "delta": {"type": "input_json_delta",
                                                          "partial_json": json.dumps(
                                                              block["input"])}}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": message["stop_reason"],
                                            "stop_sequence": None},
                                  "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    out.append(("message_stop", {"type": "message_stop"}))
    return out
