"""Google Gemini CLI: ``gemini --prompt=PROMPT --output-format stream-json``.

Its stream: ``init`` (``session_id``, model), ``message`` (user and assistant text, in
chunks when ``delta`` is set), ``tool_use`` (``tool_name``, ``tool_id``, ``parameters``),
``tool_result`` (``status``, ``output`` or ``error``), ``error`` (warnings and errors) and a
final ``result`` (``status``, ``error``, ``stats`` with token counts). Exit codes: 0 success,
1 general or API error, 41 authentication, 42 input error, 52 configuration error, 53 turn
limit exceeded.
"""

from __future__ import annotations

from typing import Any

from wf.agents import adapter as a
from wf.agents.codex import AUTH_RE, RATE_LIMIT_RE, retry_in
from wf.config import AgentConfig
from wf.model import FailureKind, says_rate_limited

EXIT_KINDS = {41: FailureKind.CONFIG_ERROR, 42: FailureKind.CONFIG_ERROR,
              52: FailureKind.CONFIG_ERROR, 53: FailureKind.LIMIT}


class GeminiAdapter(a.Adapter):
    name = "gemini"
    binary = "gemini"
    pass_env = ("GEMINI_*", "GOOGLE_API_KEY", "GOOGLE_CLOUD_*", "GOOGLE_GENAI_*",
                "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL",
                "GOOGLE_APPLICATION_CREDENTIALS")
    # wf made the worktree for this run: without trust, Gemini CLI drops the approval mode
    # to "default", and a headless run can then edit nothing.
    env = {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    credentials = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
                   "GOOGLE_APPLICATION_CREDENTIALS")
    credential_files = (".gemini/oauth_creds.json",)
    resume_lost = r"Error resuming session"
    auth_hint = "set GEMINI_API_KEY in wf's environment (or log in once with `gemini`)"

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), *self._flags(agent), "--prompt={prompt}")

    def resume_command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), *self._flags(agent), "--resume", "{session}",
                "--prompt={prompt}")

    def _flags(self, agent: AgentConfig) -> list[str]:
        flags = ["--output-format", "stream-json",
                 "--approval-mode", agent.permission_mode or "auto_edit"]
        if agent.allowed_tools:
            flags += ["--allowed-tools", ",".join(agent.allowed_tools)]
        return flags + a.options([("--model", agent.model)]) + list(agent.args)

    def reader(self) -> GeminiReader:
        return GeminiReader()


class GeminiReader(a.OutputReader):
    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.pending: list[str] = []  # assistant text chunks of the current message

    def feed(self, line: str) -> list[a.Entry]:
        obj = a.parse_json_line(line)
        if obj is None:
            return [a.text(line)] if line.strip() else []
        kind = obj.get("type")
        out = []
        if kind != "message" and self.pending:
            out.append(a.message("".join(self.pending)))
            self.pending = []
        if kind == "init" and obj.get("session_id"):
            out.append(a.session(obj["session_id"]))
        elif kind == "message" and obj.get("role") == "assistant":
            if obj.get("delta"):
                self.pending.append(str(obj.get("content") or ""))
            elif obj.get("content"):
                out.append(a.message(str(obj["content"])))
        elif kind == "tool_use":
            out.append(a.tool(obj.get("tool_name", "?"), obj.get("parameters"),
                              obj.get("tool_id")))
        elif kind == "tool_result":
            failed = obj.get("status") == "error"
            output = (obj.get("error") or {}).get("message") if failed else obj.get("output")
            out.append(a.tool_result(output or obj.get("status"), error=failed,
                                     call_id=obj.get("tool_id")))
        elif kind == "error":
            self.errors.append(str(obj.get("message") or ""))
            out.append(a.Entry("error", {"text": self.errors[-1]}))
        elif kind == "result":
            self.result = obj
            stats = obj.get("stats") or {}
            out.append(a.usage(int(stats.get("input_tokens") or 0),
                               int(stats.get("output_tokens") or 0), None))
        return out

    def verdict(self, exit_code: int | None) -> a.Verdict | None:
        r = self.result or {}
        error = r.get("error") or {}
        message = " ".join(str(error.get("message") or (self.errors[-1] if self.errors
                                                         else "")).split())
        if exit_code == 0 and r.get("status", "success") == "success" and self.result:
            return a.Verdict()
        if exit_code in EXIT_KINDS:
            kind = EXIT_KINDS[exit_code]
            what = {41: "authentication failed", 42: "input error", 52: "configuration error",
                    53: "turn limit reached"}[exit_code]
            hint = f": {GeminiAdapter.auth_hint}" if exit_code == 41 else ""
            return a.Verdict(kind, a.clip(f"Gemini CLI {what}"
                                          + (f" ({message})" if message else "") + hint, 300))
        if not message:
            return None
        if AUTH_RE.search(message):
            return a.Verdict(FailureKind.CONFIG_ERROR, f"Gemini CLI could not authenticate "
                             f"({a.clip(message, 200)}): {GeminiAdapter.auth_hint}")
        if RATE_LIMIT_RE.search(message) or "RESOURCE_EXHAUSTED" in message:
            return a.Verdict(FailureKind.TRANSIENT, a.clip(message, 200),
                             retry_after=retry_in(message),
                             rate_limited=says_rate_limited(message))
        return a.Verdict(FailureKind.AGENT_ERROR, a.clip(message, 200))


adapter = GeminiAdapter()
