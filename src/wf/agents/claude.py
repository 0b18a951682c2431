"""Claude Code: ``claude -p --output-format stream-json --verbose -- PROMPT``.

Its stream is one JSON object a line: ``system`` (``init`` with the session id, ``api_retry``
with the HTTP status and the delay it waits), ``assistant`` and ``user`` messages whose
content blocks are text, ``tool_use`` and ``tool_result``, and a final ``result`` with
``is_error``, ``api_error_status``, ``terminal_reason``, usage, ``total_cost_usd`` and
``permission_denials``. Failure is judged by ``is_error`` and ``terminal_reason`` (``subtype``
says "success" even for an API error), and an exit 0 whose only effect was a refused tool is
not a success.
"""

from __future__ import annotations

from typing import Any

from wf.agents import adapter as a
from wf.config import AgentConfig
from wf.model import FailureKind

TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RATE_LIMIT_STATUSES = frozenset({429, 529})  # too many requests, overloaded
AUTH_STATUSES = frozenset({401, 403})
LIMIT_REASONS = {"max_turns": "turn limit", "error_max_turns": "turn limit",
                 "max_budget": "budget limit", "error_max_budget_usd": "budget limit"}


class ClaudeAdapter(a.Adapter):
    name = "claude"
    binary = "claude"
    usage_reported = "live"  # usage on each assistant message
    pass_env = ("ANTHROPIC_*", "CLAUDE_*", "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY",
                "DISABLE_ERROR_REPORTING", "DISABLE_COST_WARNINGS", "IS_SANDBOX",
                "MAX_THINKING_TOKENS", "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS")
    credentials = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                   "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
    credential_files = (".claude/.credentials.json",)
    resume_lost = r"No conversation found with session ID"
    auth_hint = ("set ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`) "
                 "in wf's environment")

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), *self._flags(agent), "--", "{prompt}")

    def resume_command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), *self._flags(agent), "--resume", "{session}", "--",
                "{prompt}")

    def _flags(self, agent: AgentConfig) -> list[str]:
        flags = ["-p", "--output-format", "stream-json", "--verbose",
                 "--permission-mode", agent.permission_mode or "acceptEdits"]
        if agent.allowed_tools:
            flags += ["--allowedTools", ",".join(agent.allowed_tools)]
        return flags + a.options([("--model", agent.model)]) + list(agent.args)

    def reader(self) -> ClaudeReader:
        return ClaudeReader()


class ClaudeReader(a.OutputReader):
    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self.last_retry: dict[str, Any] | None = None
        # Usage counted live from assistant messages (each message id once: Claude Code
        # repeats a message's usage on each of its content blocks); the result line's totals
        # then add only what these missed, so a budget sees tokens as they are spent.
        self.seen_messages: set[str] = set()
        self.counted = [0, 0]

    def feed(self, line: str) -> list[a.Entry]:
        obj = a.parse_json_line(line)
        if obj is None:
            return [a.text(line)] if line.strip() else []
        kind = obj.get("type")
        if kind == "system":
            if obj.get("subtype") == "init" and obj.get("session_id"):
                return [a.session(obj["session_id"])]
            if obj.get("subtype") == "api_retry":
                self.last_retry = obj
                return [a.Entry("error", {"text": f"API error {obj.get('error_status')} "
                                                  f"({obj.get('error')}), retrying"})]
            return []
        if kind in ("assistant", "user"):
            message = obj.get("message") or {}
            entries = _content_entries(kind, message.get("content"))
            live = self._live_usage(message) if kind == "assistant" else None
            return entries if live is None else [*entries, live]
        if kind == "result":
            self.result = obj
            u = obj.get("usage") or {}
            tokens_in, tokens_out = _tokens(u)
            out = [a.usage(max(0, tokens_in - self.counted[0]),
                           max(0, tokens_out - self.counted[1]), obj.get("total_cost_usd"))]
            if obj.get("is_error"):
                out.append(a.Entry("error", {"text": str(obj.get("result") or "error")}))
            return out
        return []

    def _live_usage(self, message: dict[str, Any]) -> a.Entry | None:
        u, mid = message.get("usage"), message.get("id")
        if not isinstance(u, dict) or (mid is not None and mid in self.seen_messages):
            return None
        if mid is not None:
            self.seen_messages.add(str(mid))
        tokens_in, tokens_out = _tokens(u)
        self.counted[0] += tokens_in
        self.counted[1] += tokens_out
        return a.usage(tokens_in, tokens_out, None) if tokens_in or tokens_out else None

    def verdict(self, exit_code: int | None) -> a.Verdict | None:
        r = self.result
        if r is None:
            return None  # no result line: it crashed or was killed; the exit code says
        denied = tuple(d.get("tool_name", "?") for d in r.get("permission_denials") or ())
        reason = r.get("terminal_reason") or r.get("subtype")
        if not r.get("is_error") and reason in (None, "completed", "success"):
            return a.Verdict(denied=denied)
        message = a.clip(" ".join(str(r.get("result") or reason or "error").split()), 200)
        status = r.get("api_error_status")
        if status in AUTH_STATUSES:
            return a.Verdict(FailureKind.CONFIG_ERROR,
                             f"Claude Code could not authenticate ({message}): "
                             f"{ClaudeAdapter.auth_hint}")
        if status in TRANSIENT_STATUSES or (status is None and "Unable to connect" in message):
            return a.Verdict(FailureKind.TRANSIENT, f"API error: {message}",
                             retry_after=self._retry_after(),
                             rate_limited=status in RATE_LIMIT_STATUSES)
        if reason in LIMIT_REASONS:
            return a.Verdict(FailureKind.LIMIT, f"{LIMIT_REASONS[reason]} reached: {message}")
        return a.Verdict(FailureKind.AGENT_ERROR, message, denied=denied)

    def _retry_after(self) -> float | None:
        delay = (self.last_retry or {}).get("retry_delay_ms")
        return round(float(delay) / 1000, 3) if isinstance(delay, int | float) else None


def _content_entries(role: str, content: Any) -> list[a.Entry]:
    if isinstance(content, str):
        return [a.message(content, role)] if content.strip() else []
    out = []
    for block in content if isinstance(content, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and block.get("text", "").strip():
            out.append(a.message(block["text"], role))
        elif kind == "tool_use":
            out.append(a.tool(block.get("name", "?"), block.get("input"), block.get("id")))
        elif kind == "tool_result":
            out.append(a.tool_result(_result_text(block.get("content")),
                                     error=bool(block.get("is_error")),
                                     call_id=block.get("tool_use_id")))
    return out


def _result_text(content: Any) -> Any:
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content


adapter = ClaudeAdapter()


def _tokens(u: dict[str, Any]) -> tuple[int, int]:
    """(input tokens, cache reads and writes included; output tokens) of a usage object."""
    tokens_in = sum(int(u.get(k) or 0) for k in (
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return tokens_in, int(u.get("output_tokens") or 0)
