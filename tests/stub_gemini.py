"""A stub of the Gemini API (see stub_server for the markers), enough for the real Gemini CLI
to run a task: ``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`` answered as
server-sent events. Gemini CLI reaches it through ``GOOGLE_GEMINI_BASE_URL``.

Without a marker: a ``write_file`` call creating ``notes/<slug>.txt``, then a final text once
the call's response comes back.
"""

from __future__ import annotations

from typing import Any

from stub_server import Reply, StubServer, slug, sse

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class StubGemini(StubServer):
    def handle(self, method: str, path: str, body: Any) -> Reply:
        if method != "POST":
            return Reply(404, {})
        if ":countTokens" in path:
            return Reply(200, {"totalTokens": 100})
        contents = (body or {}).get("contents") or []
        texts = [part["text"] for c in contents if c.get("role") == "user"
                 for part in c.get("parts") or () if isinstance(part.get("text"), str)]
        prompt = texts[-1] if texts else ""
        answered = any("functionResponse" in part for c in contents[-1:]
                       for part in c.get("parts") or ())
        failed = self.failure(prompt, answering_tool=answered)
        if failed:
            status, headers = failed
            return Reply(status, {"error": {"code": status, "message": f"stub: HTTP {status}",
                                            "status": STATUS_NAMES.get(status, "UNKNOWN")}},
                         headers=headers)
        if answered or not (body or {}).get("tools"):
            parts: list[dict[str, Any]] = [{"text": "Done: the note is written."}]
        else:
            parts = [{"functionCall": {"name": "write_file", "args": {
                "file_path": f"notes/{slug(prompt)}.txt", "content": f"written for: {prompt}\n"}}}]
        chunk = {"candidates": [{"content": {"role": "model", "parts": parts},
                                 "finishReason": "STOP", "index": 0}],
                 "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20,
                                   "totalTokenCount": 120},
                 "modelVersion": "gemini-2.5-pro"}
        return sse([(None, chunk)]) if "alt=sse" in path else Reply(200, chunk)
