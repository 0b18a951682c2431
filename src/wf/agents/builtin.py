"""Agents wf ships with, registered under the ``wf.agents`` entry-point group.

An entry point names an ``AgentConfig`` (or a zero-argument callable returning one). The
named agent CLIs (claude, codex, ...) arrive as adapters in a later change.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

from wf.config import AgentConfig

shell_agent = AgentConfig(command=("sh", "-c", "{prompt}"))
"""Runs the prompt as a shell command in the worktree: ``wf run -p "make fmt" --agent shell``."""

demo_agent = AgentConfig(
    command=(sys.executable, str(Path(__file__).with_name("demo_agent.py")), "{task_id}"))
"""The demo agent: a real script that edits files and commits (see demo_agent.py)."""


def builtin_agents() -> dict[str, AgentConfig]:
    """Every agent registered through the ``wf.agents`` entry points. A broken one is skipped
    with a warning on stderr rather than taking the whole CLI down."""
    found: dict[str, AgentConfig] = {}
    for ep in entry_points(group="wf.agents"):
        try:
            obj = ep.load()
            agent = obj() if callable(obj) and not isinstance(obj, AgentConfig) else obj
            if not isinstance(agent, AgentConfig):
                raise TypeError(f"{ep.value} is not an AgentConfig")
        except Exception as exc:  # a third-party plugin must not break wf
            print(f"wf: warning: agent plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)
            continue
        found[ep.name] = agent
    found.setdefault("shell", shell_agent)
    found.setdefault("demo", demo_agent)
    return found
