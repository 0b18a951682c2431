"""What an adapter for an agent CLI is: how to start it headless, and how to read it back.

An ``Adapter`` (one per CLI: claude.py, codex.py, ...) knows

- the argv of the CLI's headless mode, with ``{prompt}`` as exactly one argument, and the
  argv that resumes a session (``{session}``);
- which of the user's environment variables the CLI needs (its API keys and settings), so
  the agent's allowlisted environment can include them and nothing else;
- how to read its output: ``reader()`` returns an ``OutputReader`` that turns each line into
  ``Entry`` values (assistant text, tool calls and results, usage, session id) and, once the
  process has exited, says how it ended (``Verdict``).

The engine records entries of the kinds in ``EVENT_KINDS`` as ``agent.*`` events; ``wf logs``
renders all of them as a transcript. Readers never raise on odd input: a line that is not
what the adapter expects is plain text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wf.config import AgentConfig
from wf.model import FailureKind

EVENT_KINDS = ("message", "tool", "usage", "session")  # recorded as agent.<kind> events
TEXT_LIMIT = 500  # characters of a message or tool input kept in an event; the log has all


@dataclass(frozen=True)
class Entry:
    """One thing the agent said or did. ``kind`` is message, tool, tool_result, usage,
    session, error or text (a line the adapter does not understand)."""

    kind: str
    data: dict[str, Any]

    def event_data(self) -> dict[str, Any]:
        """The data of the ``agent.<kind>`` event: long text cut to ``TEXT_LIMIT``."""
        return {k: clip(v) if isinstance(v, str) else v for k, v in self.data.items()}


@dataclass(frozen=True)
class Verdict:
    """How the CLI says the attempt ended. ``kind`` None means it says it succeeded (wf still
    checks that something changed); ``denied`` lists tools a permission check refused;
    ``rate_limited`` tells a rate limit or an overload apart from other transient failures."""

    kind: FailureKind | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the CLI reported a retry time
    denied: tuple[str, ...] = ()
    # A TRANSIENT failure because the provider pushed back (429, overloaded: see
    # wf.model.RATE_LIMIT_RE), not a network blip: the adaptive parallelism reacts to it.
    rate_limited: bool = False


def message(text: str, role: str = "assistant") -> Entry:
    return Entry("message", {"role": role, "text": text})


# The arguments that say what a tool call does; the rest (a file's new content, say) stays in
# the log file, out of the event log.
TOOL_TARGETS = ("file_path", "filePath", "path", "command", "cmd", "pattern", "url", "query")


def tool(name: str, tool_input: Any, call_id: str | None = None) -> Entry:
    if isinstance(tool_input, Mapping) and any(k in tool_input for k in TOOL_TARGETS):
        tool_input = " ".join(str(tool_input[k]) for k in TOOL_TARGETS if k in tool_input)
    return Entry("tool", {"name": name, "input": summarize(tool_input), "id": call_id})


def tool_result(output: Any, *, error: bool = False, call_id: str | None = None) -> Entry:
    return Entry("tool_result", {"output": summarize(output), "error": error, "id": call_id})


def usage(input_tokens: int, output_tokens: int, cost_usd: float | None) -> Entry:
    """The contract other parts read: ``input_tokens`` counts every input token the model
    processed (cached ones too), ``cost_usd`` is None when the CLI does not say."""
    return Entry("usage", {"input_tokens": int(input_tokens or 0),
                           "output_tokens": int(output_tokens or 0),
                           "cost_usd": None if cost_usd is None else float(cost_usd)})


def session(session_id: str) -> Entry:
    return Entry("session", {"session_id": session_id})


def text(line: str) -> Entry:
    return Entry("text", {"text": line})


def clip(value: str, limit: int = TEXT_LIMIT) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def summarize(value: Any) -> str:
    """A one-line rendering of a tool's input or output."""
    if isinstance(value, str):
        out = value
    elif isinstance(value, Mapping) and len(value) == 1:
        out = str(next(iter(value.values())))
    else:
        out = json.dumps(value, ensure_ascii=False, default=str)
    return clip(" ".join(out.split()))


def parse_json_line(line: str) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None if it holds something else."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class OutputReader:
    """Reads one attempt's output, line by line. Subclasses keep what they need to judge
    the end (the final result, the last API error) as they go."""

    def feed(self, line: str) -> list[Entry]:
        raise NotImplementedError

    def verdict(self, exit_code: int | None) -> Verdict | None:
        """How the run ended, by what the CLI printed and its exit code; None when there is
        nothing to go on (wf then judges by the exit code alone)."""
        return None


class Adapter:
    """An agent CLI. Subclasses set the class attributes and implement ``command`` and
    ``reader`` (and ``resume_command`` when the CLI can resume); docs/agents.md shows how to
    write one of your own."""

    name: str = ""
    binary: str = ""
    pass_env: tuple[str, ...] = ()  # names, or prefixes written "NAME_*"
    env: dict[str, str] = {}  # set for every run unless [agents.NAME].env says otherwise
    credentials: tuple[str, ...] = ()  # variables any one of which authenticates
    credential_files: tuple[str, ...] = ()  # or one of these files under HOME
    auth_hint: str = ""  # what to set when authentication fails
    resume_lost: str | None = None  # regex: a line saying the session to resume does not exist
    # When its usage is known: "live" (as it goes: a budget sees it while the agent runs) or
    # "at_end" (only once an attempt ends); an agent without an adapter reports none.
    usage_reported: str = "at_end"
    version_args: tuple[str, ...] = ("--version",)

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        raise NotImplementedError

    def resume_command(self, agent: AgentConfig) -> tuple[str, ...] | None:
        """The argv that continues session ``{session}``; None if the CLI cannot resume."""
        return None

    def reader(self) -> OutputReader:
        raise NotImplementedError

    def exe(self, agent: AgentConfig) -> str:
        return agent.binary or self.binary

    def credential_status(self, env: Mapping[str, str], home: str | None) -> list[str]:
        """The credentials found (variable names, never values, or file names); empty when
        none is."""
        found = [name for name in self.credentials if env.get(name)]
        if home:
            found += [f"~/{rel}" for rel in self.credential_files
                      if os.path.exists(os.path.join(home, rel))]
        return found


def options(pairs: Iterable[tuple[str, str | None]]) -> list[str]:
    """``--flag value`` for each pair whose value is set."""
    out: list[str] = []
    for flag, value in pairs:
        if value:
            out += [flag, value]
    return out
