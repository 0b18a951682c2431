"""Agents wf knows, registered under the ``wf.agents`` entry-point group.

An entry point names an ``AgentConfig`` (a command, like ``shell``), an ``Adapter`` (an
agent CLI wf knows how to start and read back, like ``claude``), or a zero-argument callable
returning either. ``resolve_agent`` turns an agent's configuration into the argv a task runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

from wf.agents.adapter import Adapter
from wf.config import AgentConfig

shell_agent = AgentConfig(command=("sh", "-c", "{prompt}"))
"""Runs the prompt as a shell command in the worktree: ``wf run -p "make fmt" --agent shell``."""

demo_agent = AgentConfig(
    command=(sys.executable, str(Path(__file__).with_name("demo_agent.py")), "{task_id}"))
"""The demo agent: a real script that edits files and commits (see demo_agent.py)."""

# Shipped adapters, also found without the package's entry-point metadata (a source tree).
BUILTIN_ADAPTERS = ("claude", "codex", "gemini", "opencode", "aider")


@cache
def _registered() -> tuple[dict[str, AgentConfig], dict[str, Adapter]]:
    agents: dict[str, AgentConfig] = {}
    adapters: dict[str, Adapter] = {}
    for ep in entry_points(group="wf.agents"):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, AgentConfig | Adapter):
                obj = obj()
            if isinstance(obj, Adapter):
                adapters[ep.name] = obj
            elif isinstance(obj, AgentConfig):
                agents[ep.name] = obj
            else:
                raise TypeError(f"{ep.value} is neither an AgentConfig nor an Adapter")
        except Exception as exc:  # a third-party plugin must not break wf
            print(f"wf: warning: agent plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)
    agents.setdefault("shell", shell_agent)
    agents.setdefault("demo", demo_agent)
    for name in BUILTIN_ADAPTERS:
        if name not in adapters:
            adapters[name] = import_module(f"wf.agents.{name}").adapter
    return agents, adapters


def adapters() -> dict[str, Adapter]:
    """Every adapter, by name."""
    return dict(_registered()[1])


def find_adapter(name: str | None) -> Adapter | None:
    return _registered()[1].get(name) if name else None


def usage_reported(adapter: str | None) -> str:
    """When the usage of an agent read by ``adapter`` is known: ``live``, ``at_end`` or
    ``none`` (no adapter, or one wf does not have: nothing reads usage from its output)."""
    found = find_adapter(adapter)
    return "none" if found is None else found.usage_reported


def builtin_agents() -> dict[str, AgentConfig]:
    """Every agent usable without configuration: the command agents, and one agent per
    adapter (``claude`` is ``AgentConfig(adapter="claude")``)."""
    agents, found = _registered()
    return {**{name: AgentConfig(adapter=name) for name in found}, **agents}


@dataclass(frozen=True)
class ResolvedAgent:
    """What a task needs from its agent: the argv, the argv that resumes a session (None
    unless ``resume = true`` and the CLI can), the adapter reading its output, and the
    variables it may inherit."""

    command: tuple[str, ...]
    resume_command: tuple[str, ...] | None
    adapter: str | None
    pass_env: tuple[str, ...]
    env: dict[str, str]


def resolve_agent(name: str, agent: AgentConfig) -> ResolvedAgent:
    """The agent's invocation; ValueError if it has no command and names no known adapter."""
    adapter_name = agent.adapter or (None if agent.command else name)
    adapter = find_adapter(adapter_name)
    if adapter_name and adapter is None:
        known = ", ".join(sorted(_registered()[1]))
        if agent.adapter:
            raise ValueError(f"agent {name!r}: unknown adapter {agent.adapter!r} "
                             f"(known: {known})")
        raise ValueError(f"agent {name!r} has no command: set `command = [...]`, or "
                         f"`adapter` to one of {known}")
    if adapter is None:
        assert agent.command is not None
        return ResolvedAgent(agent.command, None, None, agent.pass_env, dict(agent.env))
    resume = adapter.resume_command(agent) if agent.resume else None
    return ResolvedAgent(agent.command or adapter.command(agent), resume, adapter.name,
                         (*adapter.pass_env, *agent.pass_env), {**adapter.env, **agent.env})
