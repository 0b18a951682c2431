"""From what the user typed to validated TaskSpecs: tasks files and ``-p PROMPT -n N``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from wf.agents.builtin import builtin_agents
from wf.agents.process import resolve_program
from wf.config import Config
from wf.errors import ConfigError
from wf.repository import Repo, open_store
from wf.spec import TaskSpec
from wf.taskload import build_specs, load_tasks_file, prompt_tasks


def _with_overrides(config: Config, agent: str | None, max_parallel: int | None) -> Config:
    update = {k: v for k, v in (("agent", agent), ("max_parallel", max_parallel)) if v}
    return config.model_copy(update=update) if update else config


def plan_tasks_file(repo: Repo, path: Path, *, agent: str | None = None,
                    max_parallel: int | None = None) -> tuple[Repo, list[TaskSpec]]:
    """The run's config (wf.toml overridden by the file's own sections, then by flags) and
    the file's tasks as specs in dependency order."""
    config, tasks = load_tasks_file(path, repo.config)
    config = _with_overrides(config, agent, max_parallel)
    repo = Repo(repo.root, repo.common_dir, config)
    specs = build_specs(tasks, config, builtin_agents=builtin_agents(),
                        default_base=repo.default_base())
    check_agent_commands(specs, repo.root)
    return repo, specs


def plan_prompt(repo: Repo, prompt: str, n: int, *, agent: str | None = None,
                max_parallel: int | None = None) -> tuple[Repo, list[TaskSpec]]:
    """``n`` copies of one prompt, numbered after the copies earlier runs made."""
    config = _with_overrides(repo.config, agent, max_parallel)
    repo = Repo(repo.root, repo.common_dir, config)
    existing: set[str] = set()
    if repo.db_path.exists():
        store = open_store(repo)
        try:
            existing = {t["id"] for t in store.tasks()}
        finally:
            store.close()
    tasks = prompt_tasks(prompt, n, agent, existing)
    specs = build_specs(tasks, config, builtin_agents=builtin_agents(),
                        default_base=repo.default_base())
    check_agent_commands(specs, repo.root)
    return repo, specs


def check_agent_commands(specs: Iterable[TaskSpec], root: Path) -> None:
    """Refuse, before anything starts, an agent whose program is not there: each attempt would
    fail the same way, and `--dry-run` would have said the plan was fine. A program with a
    slash is a path (relative ones from the repository, as the worktree holds the same files);
    one without is looked up on the PATH the agent gets."""
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        program = spec.command[0] if spec.command else ""
        if (spec.agent, program) in seen or "{" in program:  # a placeholder: known only later
            continue
        seen.add((spec.agent, program))
        path = spec.env.get("PATH", os.environ.get("PATH", os.defpath))
        found = resolve_program(program, root, path) is not None
        if not found:
            where = "is not an executable file" if "/" in program else "is not found on PATH"
            raise ConfigError(f"agent {spec.agent!r}: its command {program!r} {where}",
                              hint=f"install it, or fix the command of [agents.{spec.agent}] "
                                   "(`wf doctor` checks every agent)")
