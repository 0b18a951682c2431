"""``wf doctor``: what this machine has for wf — agent CLIs, their versions and credentials,
git, and which forge tokens are set (by name: a token's value is never read into a report)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wf.agents.builtin import adapters
from wf.agents.process import agent_environment, resolve_program
from wf.config import AgentConfig, Config

FORGE_TOKEN_NAMES = ("GH_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN")
VERSION_TIMEOUT = 20.0  # a CLI's --version may start a runtime; it never needs the network


def report(env: Mapping[str, str], config: Config | None = None,
           root: Path | None = None) -> dict[str, Any]:
    """The doctor's findings as data (what ``wf doctor --json`` prints). ``configured`` lists
    the agents of wf.toml whose program is missing: a run would refuse them."""
    known = adapters()
    agents: dict[str, AgentConfig] = {name: AgentConfig(adapter=name) for name in known}
    own = config.agents if config else {}
    for name, agent in own.items():
        if agent.adapter or agent.command is not None or name in known:
            agents[name] = agent
    rows = []
    for name, agent in sorted(agents.items()):
        adapter = known.get(agent.adapter or ("" if agent.command else name))
        if adapter is not None:
            row = _agent_row(name, agent, adapter, env)
        elif agent.command:
            row = _command_row(name, agent, env, root or Path.cwd())
        else:
            continue
        rows.append({**row, "configured": name in own})
    return {"agents": rows, "git": _git(env),
            "forge_tokens": {name: bool(env.get(name)) for name in FORGE_TOKEN_NAMES}}


def unusable(found: Mapping[str, Any]) -> list[str]:
    """The agents of wf.toml a run could not start: their program is not there."""
    return [a["name"] for a in found["agents"] if a["configured"] and not a["installed"]]


def _command_row(name: str, agent: AgentConfig, env: Mapping[str, str], root: Path) -> dict:
    """An agent that is a plain command: is its program there (no version: wf cannot know
    what flag a script takes, and running it might do work)."""
    program = agent.command[0]
    path = resolve_program(program, root, agent.env.get("PATH", env.get("PATH")))
    return {"name": name, "adapter": None, "binary": program, "path": path,
            "installed": path is not None, "version": None, "credentials": [],
            "missing": [] if path else ["binary"], "auth_hint": None}


def _agent_row(name: str, agent: AgentConfig, adapter: Any, env: Mapping[str, str]) -> dict:
    binary = adapter.exe(agent)
    path = shutil.which(binary, path=env.get("PATH"))
    creds = adapter.credential_status(env, env.get("HOME"))
    missing = ([] if path else ["binary"]) + ([] if creds else ["credentials"])
    version = None
    if path:
        agent_env = agent_environment(env, wf_vars={}, extra=dict(agent.env),
                                      pass_env=(*adapter.pass_env, *agent.pass_env))
        version = _version([path, *adapter.version_args], agent_env)
    return {"name": name, "adapter": adapter.name, "binary": binary, "path": path,
            "installed": path is not None, "version": version, "credentials": creds,
            "missing": missing, "auth_hint": None if creds else adapter.auth_hint}


def _git(env: Mapping[str, str]) -> dict[str, Any]:
    path = shutil.which("git", path=env.get("PATH"))
    return {"path": path, "version": _version([path, "--version"], dict(env)) if path else None}


def _version(argv: list[str], env: Mapping[str, str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=dict(env),
                              timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None
