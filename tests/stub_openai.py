"""A stub of OpenAI's API (see stub_server for the markers), enough for the real Codex CLI and
aider to run a task: ``POST /v1/responses`` answered as server-sent events (Codex), ``POST
/v1/chat/completions`` as one JSON completion (aider with ``--no-stream``) whose text is an
edit in aider's "whole" format.

Without a marker, Codex gets an ``exec_command`` call writing ``notes/<slug>.txt``, then a
final message once the command's output comes back. Codex reaches the stub through a model
provider of its own (``provider_args``).
"""

from __future__ import annotations

import json
from typing import Any

from stub_server import Reply, StubServer, slug, sse


class StubOpenAI(StubServer):
    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def provider_args(self) -> list[str]:
        """Codex options selecting this server as the model provider, with Codex's own
        retries off so each failure reaches wf."""
        provider = (f'{{name = "stub", base_url = "{self.api_url}", '
                    'env_key = "OPENAI_API_KEY", wire_api = "responses", '
                    'request_max_retries = 0, stream_max_retries = 0}')
        return ["-c", f"model_providers.stub={provider}", "-c", "model_provider=stub"]

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if method == "POST" and path.startswith("/v1/chat/completions"):
            return self.chat_answer(body or {})
        if method == "POST" and path.startswith("/v1/responses"):
            return self.responses_answer(body or {})
        if method == "GET" and path.startswith("/v1/models"):
            return Reply(200, {"object": "list", "data": []})
        return Reply(404, {"error": {"message": "stub"}})

    def _error(self, prompt: str, answering_tool: bool) -> Reply | None:
        failed = self.failure(prompt, answering_tool=answering_tool)
        if failed is None:
            return None
        status, headers = failed
        return Reply(status, {"error": {"message": f"stub: HTTP {status}",
                                        "type": "stub_error", "code": None}}, headers=headers)

    def chat_answer(self, body: dict[str, Any]) -> Reply:
        users = [m.get("content") for m in body.get("messages") or () if m.get("role") == "user"]
        prompt = users[-1] if users and isinstance(users[-1], str) else ""
        error = self._error(prompt, answering_tool=False)
        if error:
            return error
        text = (f"I'll add the note.\n\nnotes/{slug(prompt)}.txt\n```\n"
                f"written for: {slug(prompt)}\n```\n")
        return Reply(200, {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
                           "model": body.get("model"),
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 2300, "completion_tokens": 150,
                                     "total_tokens": 2450}})

    def responses_answer(self, body: dict[str, Any]) -> Reply:
        items = body.get("input") or []
        texts = [c.get("text", "") for i in items if i.get("role") == "user"
                 for c in i.get("content") or () if isinstance(c, dict)]
        prompt = texts[-1] if texts else ""
        answered = any(i.get("type") == "function_call_output" for i in items)
        error = self._error(prompt, answering_tool=answered)
        if error:
            return error
        if answered:
            item = {"type": "message", "id": "msg_stub", "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Done: the note is written.",
                                 "annotations": []}]}
        else:
            name = slug(prompt)
            item = {"type": "function_call", "id": "fc_stub", "call_id": "call_stub",
                    "name": "exec_command", "status": "completed", "arguments": json.dumps({
                        "cmd": f"mkdir -p notes && echo 'written for: {name}' > notes/{name}.txt",
                        "login": False})}
        usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 120}
        return sse([(e["type"], e) for e in (
            {"type": "response.created", "response": {"id": "resp_stub"}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": {"id": "resp_stub", "usage": usage}})])
