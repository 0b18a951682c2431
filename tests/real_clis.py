"""The real agent CLIs that .ci/run installs (Claude Code, Codex, Gemini CLI and opencode from
npm into .ci/node/, aider from PyPI into the venv .ci/aider), and for each the stub model API
it talks to and the environment and ``[agents.NAME]`` settings that point it there. The tests
of real CLIs (tests/integration/test_agent_clis_real.py, test_claude_code.py) are
parametrised over this table."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runwf import ci_cli, run_agent_tasks
from stub_anthropic import StubAnthropic
from stub_gemini import StubGemini
from stub_openai import StubOpenAI
from stub_server import StubServer


@dataclass(frozen=True)
class RealCli:
    name: str  # wf's agent name; also the executable's
    stub: type[StubServer]  # the model API it is pointed at
    # (stub, home) -> the variables of the CLI's own; may write its configuration into home
    env: Callable[[Any, Path], dict[str, str]]
    # stub -> the body of [agents.NAME] a task file gives it ("": none, wf's defaults)
    settings: Callable[[Any], str] = lambda stub: ""


def _claude_env(stub: StubAnthropic, home: Path) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": stub.url, "ANTHROPIC_API_KEY": "test",
            "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_MAX_RETRIES": "1"}


def _gemini_env(stub: StubGemini, home: Path) -> dict[str, str]:
    # Headless runs need the auth type chosen once, as `gemini` asks on first use.
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    return {"GEMINI_API_KEY": "test", "GOOGLE_GEMINI_BASE_URL": stub.url}


def _opencode_env(stub: StubAnthropic, home: Path) -> dict[str, str]:
    config = {"autoupdate": False, "share": "disabled",
              "provider": {"anthropic": {"options": {"baseURL": f"{stub.url}/v1"}}}}
    return {"ANTHROPIC_API_KEY": "test", "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1"}


REAL_CLIS = {cli.name: cli for cli in (
    RealCli("claude", StubAnthropic, _claude_env),
    RealCli("codex", StubOpenAI, lambda stub, home: {"OPENAI_API_KEY": "test"},
            lambda stub: f'model = "gpt-5"\nargs = {json.dumps(stub.provider_args)}'),
    RealCli("gemini", StubGemini, _gemini_env, lambda stub: 'model = "gemini-2.5-pro"'),
    RealCli("opencode", StubAnthropic, _opencode_env,
            lambda stub: 'model = "anthropic/claude-sonnet-4-5"'),
    RealCli("aider", StubOpenAI,
            lambda stub, home: {"OPENAI_API_KEY": "test", "OPENAI_API_BASE": stub.api_url,
                                # no fetch of litellm's price list
                                "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            lambda stub: 'model = "gpt-4o"\nargs = ["--edit-format", "whole", "--map-tokens", "0"]'),
)}


def installed(name: str):
    """A mark skipping a test of real CLI ``name`` where .ci/run has not installed it (under
    CI, an error at collection instead: see runwf.ci_cli)."""
    return pytest.mark.skipif(ci_cli(name) is None,
                              reason=f"{name} not installed (.ci/run installs it)")


def each(*rows: tuple) -> list:
    """``rows`` (tuples whose first item is a CLI's name) as pytest params named after the CLI,
    each skipped where that CLI is not installed."""
    return [pytest.param(*row, id=row[0], marks=installed(row[0])) for row in rows]


def cli_env(name: str, stub: StubServer, home: Path) -> dict[str, str]:
    """The environment ``wf`` runs real CLI ``name`` in: the CLI first on PATH, a fresh HOME,
    its variables pointing it at ``stub``, and a forge token that must never reach it."""
    home.mkdir()
    return {"PATH": f"{ci_cli(name)}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            **REAL_CLIS[name].env(stub, home), "GH_TOKEN": "forge-secret-never-passed"}


def run_real(repo: Path, env: dict, name: str, stub: StubServer, *prompts: str,
             attempts: int = 3, resume: bool = False):
    """`wf run` of one task per prompt (ids t1, t2, ...) with real CLI ``name``, its table
    settings, plus ``resume = true`` if asked (wf's default is false)."""
    settings = "\n".join(filter(None, [REAL_CLIS[name].settings(stub),
                                       "resume = true" if resume else ""]))
    return run_agent_tasks(repo, env, name, *prompts, attempts=attempts, settings=settings)
