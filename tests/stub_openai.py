"""A stub of OpenAI's API on 127.0.0.1, enough for the real Codex CLI and aider to run a
task: ``POST /v1/responses`` answered as a stream of server-sent events (Codex), ``POST
/v1/chat/completions`` as one JSON completion (aider with ``--no-stream``) whose text is an
edit in aider's "whole" format.

Like stub_anthropic (whose markers it shares): with no marker in the prompt, an
``exec_command`` call writing ``notes/<slug>.txt``, then a final message once the command's
output comes back; ``[fail STATUS xK]`` answers the first K requests for that prompt with HTTP
STATUS. Codex reaches it through a model provider of its own (``provider_args``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stub_anthropic import FAIL_RE, slug


class StubOpenAI:
    """Start with ``with StubOpenAI() as stub:``; ``stub.provider_args`` point Codex at it."""

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
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def provider_args(self) -> list[str]:
        """Codex options selecting this server as the model provider, with Codex's own
        retries off so each failure reaches wf."""
        provider = (f'{{name = "stub", base_url = "{self.url}", env_key = "OPENAI_API_KEY", '
                    'wire_api = "responses", request_max_retries = 0, stream_max_retries = 0}')
        return ["-c", f"model_providers.stub={provider}", "-c", "model_provider=stub"]

    def __enter__(self) -> StubOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def failure(self, prompt: str, late_ok: bool) -> tuple[int, Any] | None:
        """The HTTP error a ``[fail ...]`` marker in ``prompt`` still asks for, if any."""
        fail = FAIL_RE.search(prompt)
        if not fail or (fail.group(4) and not late_ok):
            return None
        status, times = int(fail.group(1)), int(fail.group(2))
        with self._lock:
            served = self.failures_served.get(prompt, 0)
            if served >= times:
                return None
            self.failures_served[prompt] = served + 1
        return status, {"error": {"message": f"stub: HTTP {status}", "type": "stub_error",
                                  "code": None}}

    def chat_answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, completion or error body) for one /v1/chat/completions request."""
        users = [m.get("content") for m in body.get("messages") or () if m.get("role") == "user"]
        prompt = users[-1] if users and isinstance(users[-1], str) else ""
        failed = self.failure(prompt, late_ok=False)
        if failed:
            return failed
        text = (f"I'll add the note.\n\nnotes/{slug(prompt)}.txt\n```\n"
                f"written for: {slug(prompt)}\n```\n")
        return 200, {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
                     "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 2300, "completion_tokens": 150,
                               "total_tokens": 2450}}

    def answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, events or error body) for one /v1/responses request."""
        items = body.get("input") or []
        prompt = _last_user_text(items)
        answered = any(i.get("type") == "function_call_output" for i in items)
        failed = self.failure(prompt, late_ok=answered)
        if failed:
            return failed
        if answered:
            item = {"type": "message", "id": "msg_stub", "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Done: the note is written.",
                                 "annotations": []}]}
        else:
            command = f"mkdir -p notes && echo 'written for: {slug(prompt)}' > notes/{slug(prompt)}.txt"
            item = {"type": "function_call", "id": "fc_stub", "call_id": "call_stub",
                    "name": "exec_command", "status": "completed",
                    "arguments": json.dumps({"cmd": command, "login": False})}
        usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 120}
        return 200, [{"type": "response.created", "response": {"id": "resp_stub"}},
                     {"type": "response.output_item.done", "output_index": 0, "item": item},
                     {"type": "response.completed",
                      "response": {"id": "resp_stub", "usage": usage}}]

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

            def do_GET(self) -> None:  # noqa: N802  (e.g. the model list)
                self._send(200, "application/json", b'{"object": "list", "data": []}')

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with stub._lock:
                    stub.requests.append({"path": self.path, "body": body})
                if self.path.startswith("/v1/chat/completions"):
                    status, payload = stub.chat_answer(body)
                    self._send(status, "application/json", json.dumps(payload).encode())
                    return
                if not self.path.startswith("/v1/responses"):
                    self._send(404, "application/json", b'{"error": {"message": "stub"}}')
                    return
                status, payload = stub.answer(body)
                if status != 200:
                    self._send(status, "application/json", json.dumps(payload).encode())
                    return
                stream = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n"
                                 for e in payload)
                self._send(200, "text/event-stream", stream.encode())

        return Handler


def _last_user_text(items: list[dict[str, Any]]) -> str:
    texts = [c.get("text", "") for i in items if i.get("role") == "user"
             for c in i.get("content") or () if isinstance(c, dict)]
    return texts[-1] if texts else ""
