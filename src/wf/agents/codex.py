"""OpenAI Codex CLI: ``codex exec --json --sandbox workspace-write -- PROMPT``.

Its ``--json`` stream: ``thread.started`` (the thread id, which ``codex exec resume``
takes), ``turn.started``, ``item.started`` / ``item.updated`` / ``item.completed`` whose
``item`` is an ``agent_message``, ``reasoning``, ``command_execution``, ``file_change``,
``mcp_tool_call``, ``web_search``, ``todo_list`` or ``error``, then ``turn.completed`` with
usage or ``turn.failed`` with an error, and top-level ``error`` events.
"""

from __future__ import annotations

import re
from typing import Any

from wf.agents import adapter as a
from wf.config import AgentConfig
from wf.model import FailureKind, says_rate_limited

# Transient: a rate limit (wf.model.says_rate_limited tells which) or the network.
RATE_LIMIT_RE = re.compile(r"\b(429|rate.?limit|too many requests|overloaded|503|502|"
                           r"stream disconnected|timed? ?out)\b", re.I)
AUTH_RE = re.compile(r"\b(401|403|unauthori[sz]ed|invalid api key|not logged in|"
                     r"authentication)\b", re.I)
RETRY_IN_RE = re.compile(r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|s|seconds?)\b", re.I)
TOOL_ITEMS = {"command_execution": "shell", "file_change": "edit", "mcp_tool_call": "mcp",
              "web_search": "web_search"}


class CodexAdapter(a.Adapter):
    name = "codex"
    binary = "codex"
    pass_env = ("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*")
    credentials = ("OPENAI_API_KEY", "CODEX_API_KEY")
    credential_files = (".codex/auth.json",)
    resume_lost = r"no rollout found for thread id"
    auth_hint = "set OPENAI_API_KEY in wf's environment (or run `codex login`)"

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), "exec", *self._flags(agent), "--", "{prompt}")

    def resume_command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), "exec", *self._flags(agent), "resume", "{session}", "--",
                "{prompt}")

    def _flags(self, agent: AgentConfig) -> list[str]:
        return ["--json", "--sandbox", agent.permission_mode or "workspace-write",
                *a.options([("--model", agent.model)]), *agent.args]

    def reader(self) -> CodexReader:
        return CodexReader()


class CodexReader(a.OutputReader):
    def __init__(self) -> None:
        self.completed = False
        self.failure: str | None = None
        self.started: set[str | None] = set()

    def feed(self, line: str) -> list[a.Entry]:
        obj = a.parse_json_line(line)
        if obj is None:
            return [a.text(line)] if line.strip() else []
        kind = obj.get("type")
        if kind == "thread.started" and obj.get("thread_id"):
            return [a.session(obj["thread_id"])]
        if kind in ("item.started", "item.completed"):
            item = obj.get("item") or {}
            out = []
            # A tool item is announced once, when it starts (or completes, if it never said
            # it started, as file changes do).
            if item.get("type") in TOOL_ITEMS and item.get("id") not in self.started:
                self.started.add(item.get("id"))
                out.append(a.tool(TOOL_ITEMS[item["type"]], _item_input(item), item.get("id")))
            return out + (_item_entries(item) if kind == "item.completed" else [])
        if kind == "turn.completed":
            self.completed = True
            self.failure = None  # errors before it ("Reconnecting... 2/5") were recovered from
            u = obj.get("usage") or {}
            return [a.usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0),
                            None)]
        if kind in ("turn.failed", "error"):
            err = obj.get("error")
            text = (err or {}).get("message") if isinstance(err, dict) else obj.get("message")
            self.failure = str(text or kind)
            return [a.Entry("error", {"text": self.failure})]
        return []

    def verdict(self, exit_code: int | None) -> a.Verdict | None:
        if self.failure is None:
            return a.Verdict() if self.completed and exit_code == 0 else None
        message = a.clip(" ".join(self.failure.split()), 200)
        if AUTH_RE.search(message):
            return a.Verdict(FailureKind.CONFIG_ERROR,
                             f"Codex could not authenticate ({message}): "
                             f"{CodexAdapter.auth_hint}")
        if RATE_LIMIT_RE.search(message):
            return a.Verdict(FailureKind.TRANSIENT, message, retry_after=retry_in(message),
                             rate_limited=says_rate_limited(message))
        return a.Verdict(FailureKind.AGENT_ERROR, message)


def retry_in(message: str) -> float | None:
    """The delay in "try again in 20s" / "retry in 1500ms", when a message says one."""
    found = RETRY_IN_RE.search(message)
    if not found:
        return None
    value = float(found.group(1))
    return value / 1000 if found.group(2).lower() == "ms" else value


def _item_input(item: dict[str, Any]) -> Any:
    if item.get("type") == "command_execution":
        return item.get("command")
    if item.get("type") == "file_change":
        return ", ".join(f"{c.get('kind')} {c.get('path')}" for c in item.get("changes") or ())
    if item.get("type") == "mcp_tool_call":
        return f"{item.get('server')}.{item.get('tool')}"
    return item.get("query") or item


def _item_entries(item: dict[str, Any]) -> list[a.Entry]:
    kind = item.get("type")
    if kind == "agent_message" and item.get("text"):
        return [a.message(item["text"])]
    if kind == "command_execution":
        return [a.tool_result(item.get("aggregated_output") or f"exit {item.get('exit_code')}",
                              error=item.get("exit_code") not in (0, None),
                              call_id=item.get("id"))]
    if kind == "file_change":
        return [a.tool_result(_item_input(item), error=item.get("status") == "failed",
                              call_id=item.get("id"))]
    if kind == "error" and item.get("message"):
        return [a.Entry("error", {"text": item["message"]})]
    return []


adapter = CodexAdapter()
