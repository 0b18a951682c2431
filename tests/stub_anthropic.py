"""A stub of Anthropic's Messages API (see stub_server for the markers), enough for the real
Claude Code and opencode to run a task: ``POST /v1/messages`` answered in the streaming (SSE)
format, or as one JSON message.

Without a marker: a ``Write`` tool call (opencode's ``write``) creating ``notes/<slug>.txt`` in
the working directory (read from the system prompt), then a final text once the tool result
comes back. ``[deny]``: a ``Bash`` call that Claude Code's ``acceptEdits`` mode does not allow.
Requests are recorded, so tests can see that ``--resume`` sent the earlier conversation.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stub_server import Reply, StubServer, slug, sse

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 429: "rate_limit_error", 529: "overloaded_error",
               500: "api_error"}


class StubAnthropic(StubServer):
    def message_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].split("?")[0] == "/v1/messages"]

    def handle(self, method: str, path: str, body: Any) -> Reply:
        path = path.split("?")[0]
        if method == "POST" and path == "/v1/messages/count_tokens":
            return Reply(200, {"input_tokens": 100})
        if method != "POST" or path != "/v1/messages":
            return Reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                          "message": "stub"}})
        message = self.answer(body or {})
        if isinstance(message, Reply):
            return message
        if not (body or {}).get("stream"):
            return Reply(200, message)
        return sse(_sse_events(message))

    def answer(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        """The assistant message for one request, or the error Reply a marker asks for."""
        messages = body.get("messages") or []
        prompt = _first_user_text(messages)
        answering = _has_tool_result(_last_user(messages))
        failed = self.failure(prompt, answering_tool=answering)
        if failed:
            status, headers = failed
            return Reply(status, {"type": "error", "error": {
                "type": ERROR_TYPES.get(status, "api_error"),
                "message": f"stub: HTTP {status}"}}, headers=headers)
        if not body.get("tools") or answering:
            return _message([{"type": "text", "text": "Done: the file is written."}], "end_turn")
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
        return _message([{"type": "tool_use", "id": "toolu_stub_1", **call}], "tool_use")


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
            first, delta = {"type": "text", "text": ""}, {"type": "text_delta",
                                                           "text": block["text"]}
        else:
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        out += [("content_block_start", {"type": "content_block_start", "index": i,
                                         "content_block": first}),
                ("content_block_delta", {"type": "content_block_delta", "index": i,
                                         "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": i})]
    out.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": message["stop_reason"],
                                            "stop_sequence": None},
                                  "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    out.append(("message_stop", {"type": "message_stop"}))
    return out
