"""opencode: ``opencode run --format json -- PROMPT``.

Its stream is one JSON object a line with ``type``, ``timestamp``, ``sessionID`` and a
``part``: ``step_start``, ``text`` (``part.text``), ``tool_use`` (``part.tool``,
``part.state`` with ``status``, ``input``, ``output`` or ``error``), ``step_finish``
(``part.tokens`` and ``part.cost`` of that step) and ``error`` (``error.name`` and
``error.data.message``, with ``statusCode`` and ``isRetryable`` for API errors).
"""

from __future__ import annotations

from typing import Any

from wf.agents import adapter as a
from wf.agents.codex import AUTH_RE, RATE_LIMIT_RE, retry_in
from wf.config import AgentConfig
from wf.model import FailureKind, says_rate_limited


class OpencodeAdapter(a.Adapter):
    name = "opencode"
    binary = "opencode"
    usage_reported = "live"  # usage on each step_finish
    pass_env = ("OPENCODE_*", "ANTHROPIC_*", "OPENAI_*", "GEMINI_*", "GOOGLE_API_KEY",
                "OPENROUTER_API_KEY", "GROQ_API_KEY", "XAI_API_KEY", "DEEPSEEK_API_KEY")
    credentials = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY",
                   "OPENROUTER_API_KEY", "GROQ_API_KEY", "XAI_API_KEY", "DEEPSEEK_API_KEY")
    credential_files = (".local/share/opencode/auth.json",)
    auth_hint = "set your provider's API key (e.g. ANTHROPIC_API_KEY) or run `opencode auth login`"

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), "run", *self._flags(agent), "--", "{prompt}")

    def resume_command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), "run", *self._flags(agent), "--session", "{session}", "--",
                "{prompt}")

    def _flags(self, agent: AgentConfig) -> list[str]:
        return ["--format", "json", *a.options([("--model", agent.model),
                                                ("--agent", agent.permission_mode)]),
                *agent.args]

    def reader(self) -> OpencodeReader:
        return OpencodeReader()


class OpencodeReader(a.OutputReader):
    def __init__(self) -> None:
        self.session: str | None = None
        self.finished = False
        self.error: dict[str, Any] | None = None

    def feed(self, line: str) -> list[a.Entry]:
        obj = a.parse_json_line(line)
        if obj is None:
            return [a.text(line)] if line.strip() else []
        out = []
        sid = obj.get("sessionID")
        if sid and sid != self.session:
            self.session = sid
            out.append(a.session(sid))
        part = obj.get("part") or {}
        kind = obj.get("type")
        if kind == "text" and part.get("text"):
            out.append(a.message(part["text"]))
        elif kind == "tool_use":
            state = part.get("state") or {}
            out.append(a.tool(part.get("tool", "?"), state.get("input"), part.get("callID")))
            if state.get("status") in ("completed", "error"):
                failed = state["status"] == "error"
                out.append(a.tool_result(state.get("error") if failed else state.get("output"),
                                         error=failed, call_id=part.get("callID")))
        elif kind == "step_finish":
            self.finished = True
            tokens = part.get("tokens") or {}
            cache = tokens.get("cache") or {}
            out.append(a.usage(int(tokens.get("input") or 0) + int(cache.get("read") or 0)
                               + int(cache.get("write") or 0),
                               int(tokens.get("output") or 0) + int(tokens.get("reasoning") or 0),
                               part.get("cost")))
        elif kind == "error":
            err = obj.get("error") or {}
            self.error = err if isinstance(err, dict) else {"data": {"message": str(err)}}
            out.append(a.Entry("error", {"text": _error_text(self.error)}))
        return out

    def verdict(self, exit_code: int | None) -> a.Verdict | None:
        if self.error is None:
            return a.Verdict() if self.finished and exit_code == 0 else None
        err, message = self.error, a.clip(_error_text(self.error), 200)
        data = err.get("data") or {}
        status = data.get("statusCode")
        if err.get("name") == "ProviderAuthError" or status in (401, 403) or (
                status is None and AUTH_RE.search(message)):
            return a.Verdict(FailureKind.CONFIG_ERROR, f"opencode could not authenticate "
                             f"({message}): {OpencodeAdapter.auth_hint}")
        if data.get("isRetryable") or status in (429, 500, 502, 503, 529) or (
                status is None and RATE_LIMIT_RE.search(message)):
            return a.Verdict(FailureKind.TRANSIENT, message, retry_after=retry_in(message),
                             rate_limited=status in (429, 529) or says_rate_limited(message))
        return a.Verdict(FailureKind.AGENT_ERROR, message)


def _error_text(err: dict[str, Any]) -> str:
    data = err.get("data") or {}
    text = data.get("message") or err.get("message") or err.get("name") or "error"
    return " ".join(str(text).split())


adapter = OpencodeAdapter()
