"""Read tasks files and resolve tasks into ``TaskSpec`` values.

A tasks file holds ``[[task]]`` tables and, at top level, configuration for that run only (see
``wf.configload`` for the layers). ``build_specs`` resolves each task against the configuration
(agent, timeouts inherited task < agent < config, retry, base, setup), checks the dependency
graph and returns the specs in a dependency order; ``prompt_tasks`` makes the tasks of
``wf run -p PROMPT -n N``. Every problem is a one-line ``ConfigError`` (``wf.configerrors``).
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wf.agents.builtin import resolve_agent
from wf.config import AgentConfig, Config, TaskConfig
from wf.configerrors import (
    Where,
    describe_errors,
    dotted,
    fail,
    kind_of,
    no_where,
    task_where,
)
from wf.configload import check_values, merge, read_toml, validate_config
from wf.spec import RetryPolicy, TaskSpec

SLUG_MAX = 40


def load_tasks_file(path: Path, config: Config) -> tuple[Config, list[TaskConfig]]:
    """Read a tasks file: its ``[[task]]`` tables, and the configuration for this run, which is
    ``config`` overridden by the file's top-level keys and sections."""
    name = str(path)
    data = read_toml(Path(path), name)
    raw_tasks = data.pop("task", None)
    if raw_tasks is None or raw_tasks == []:
        hint = "did you mean [[task]] (singular)?" if "tasks" in data else \
            'add one per task: [[task]] then prompt = "..."'
        raise fail(f"no [[task]] tables in {name}", hint=hint)
    if not isinstance(raw_tasks, list):
        raise fail(f"{name}: 'task' must be an array of tables written [[task]], "
                   f"got {kind_of(raw_tasks)}")
    run_config = validate_config(merge(config, data), name) if data else config
    tasks = [_validate_task(raw, index, name) for index, raw in enumerate(raw_tasks, 1)]
    for index, task in enumerate(tasks, 1):
        if task.retry:
            where = task_where(index, task.id)
            _resolve_retry(run_config.retry, task.retry, name + ": ",
                           lambda loc, table: where(("retry", *loc), table))
    return run_config, tasks


def build_specs(tasks: list[TaskConfig], config: Config, *,
                builtin_agents: Mapping[str, AgentConfig], default_base: str) -> list[TaskSpec]:
    """Resolve tasks into specs (ids, agent, timeouts, retry, base, setup) and return them in a
    dependency order, stable in list order; a bad agent, retry field or DAG is a ConfigError."""
    ids = _assign_ids(tasks)
    by_id = dict(zip(ids, tasks, strict=True))
    deps = {tid: _unique(task.depends_on) for tid, task in by_id.items()}
    _check_dependencies(ids, deps)
    specs = {tid: _build_spec(tid, task, deps[tid], config, builtin_agents, default_base)
             for tid, task in by_id.items()}
    return [specs[tid] for tid in _topological_order(ids, deps)]


def prompt_tasks(prompt: str, n: int, agent: str | None,
                 existing_ids: set[str]) -> list[TaskConfig]:
    """``n`` tasks running ``prompt`` (``wf run -p PROMPT -n N``), with ids ``<slug>-<k>`` where
    k continues after the highest k that ``existing_ids`` already holds for that slug."""
    if n < 1:
        raise fail(f"the number of tasks must be at least 1, got {n}")
    if not prompt.strip():
        raise fail("the prompt is empty")
    slug = prompt_slug(prompt)
    numbered = re.compile(re.escape(slug) + r"-([0-9]+)")
    used = [int(m.group(1)) for tid in existing_ids if (m := numbered.fullmatch(tid))]
    first = max(used, default=0) + 1
    extra = {"agent": agent} if agent else {}
    try:
        return [TaskConfig(id=f"{slug}-{k}", prompt=prompt, **extra)
                for k in range(first, first + n)]
    except ValidationError as exc:
        raise fail(f"cannot number more tasks for {slug!r}: {describe_errors(exc, no_where)}"
                   ) from exc


def prompt_slug(prompt: str) -> str:
    """A task id made from a prompt: lowercase ASCII letters, digits and '-', at most 40
    characters, "task" if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "task"


def _validate_task(raw: Any, index: int, name: str) -> TaskConfig:
    if not isinstance(raw, dict):
        raise fail(f"{name}: [[task]] #{index} must be a table, got {kind_of(raw)}")
    task_id = raw.get("id")
    where = task_where(index, task_id if isinstance(task_id, str) else None)
    check_values(raw, where, name + ": ")
    try:
        task = TaskConfig.model_validate(raw)
    except ValidationError as exc:
        raise fail(f"{name}: {describe_errors(exc, where, TaskConfig)}") from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise fail(f"{name}: {where((), True)}: {exc}") from exc
    if not task.prompt.strip():
        raise fail(f"{name}: {where(('prompt',), False)}: the prompt is empty")
    return task


def _resolve_retry(base: RetryPolicy, overrides: Mapping[str, Any], prefix: str,
                   where: Where) -> RetryPolicy:
    try:
        return RetryPolicy.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        raise fail(prefix + describe_errors(exc, where, RetryPolicy)) from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise fail(f"{prefix}{where((), True)}: {exc}") from exc


# --- resolving tasks ----------------------------------------------------------------------


def _assign_ids(tasks: list[TaskConfig]) -> list[str]:
    seen: dict[str, int] = {}
    for index, task in enumerate(tasks, 1):
        if task.id is not None:
            if task.id in seen:
                raise fail(f"duplicate task id {task.id!r} (tasks #{seen[task.id]} and #{index})")
            seen[task.id] = index
    ids = []
    for index, task in enumerate(tasks, 1):
        tid = task.id
        if tid is None:
            base = prompt_slug(task.prompt)
            tid, k = base, 1
            while tid in seen:
                k += 1
                tid = f"{base}-{k}"
            seen[tid] = index
        ids.append(tid)
    return ids


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _check_dependencies(ids: list[str], deps: Mapping[str, tuple[str, ...]]) -> None:
    known = set(ids)
    for tid in ids:
        for dep in deps[tid]:
            if dep == tid:
                raise fail(f"task {tid!r} depends on itself")
            if dep not in known:
                shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
                raise fail(f"task {tid!r} depends on unknown task {dep!r}",
                           hint=f"known task ids: {shown}")


def _topological_order(ids: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm taking the earliest ready task in list order; a cycle is an error."""
    position = {tid: pos for pos, tid in enumerate(ids)}
    waiting_on = {tid: len(deps[tid]) for tid in ids}
    dependents: dict[str, list[str]] = {tid: [] for tid in ids}
    for tid in ids:
        for dep in deps[tid]:
            dependents[dep].append(tid)
    ready = [position[tid] for tid in ids if waiting_on[tid] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        tid = ids[heapq.heappop(ready)]
        order.append(tid)
        for child in dependents[tid]:
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) < len(ids):
        left = [tid for tid in ids if waiting_on[tid]]
        raise fail(f"dependency cycle: {' -> '.join(_find_cycle(left, deps))}")
    return order


def _find_cycle(left: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A cycle among ``left`` (tasks never ready): each of them waits on another of them."""
    remaining = set(left)
    path, seen_at = [left[0]], {left[0]: 0}
    while True:
        nxt = next(dep for dep in deps[path[-1]] if dep in remaining)
        if nxt in seen_at:
            return [*path[seen_at[nxt]:], nxt]
        seen_at[nxt] = len(path)
        path.append(nxt)


def _build_spec(tid: str, task: TaskConfig, deps: tuple[str, ...], config: Config,
                builtin_agents: Mapping[str, AgentConfig], default_base: str) -> TaskSpec:
    agent_name = task.agent or config.agent
    if not agent_name:
        raise fail(f"task {tid!r} names no agent: set `agent` in wf.toml or in the task, "
                   "or pass --agent")
    agent = config.agents.get(agent_name) or builtin_agents.get(agent_name)
    if agent is None:
        known = ", ".join(sorted({*config.agents, *builtin_agents})) or "none"
        raise fail(f"task {tid!r}: unknown agent {agent_name!r} (known: {known})")
    try:
        resolved = resolve_agent(agent_name, agent)
    except ValueError as exc:
        raise fail(f"task {tid!r}: {exc}") from exc
    retry = config.retry
    if task.retry:
        retry = _resolve_retry(config.retry, task.retry, f"task {tid!r}: ",
                               lambda loc, table: dotted(("retry", *loc)))
    setup = task.setup if task.setup is not None else config.setup
    return TaskSpec(
        id=tid, prompt=task.prompt, agent=agent_name, command=resolved.command,
        resume_command=resolved.resume_command, adapter=resolved.adapter,
        env=resolved.env, pass_env=resolved.pass_env, depends_on=deps,
        base=task.base or config.base or default_base,
        timeout=_inherit("timeout", task, agent, config),
        no_output_timeout=_inherit("no_output_timeout", task, agent, config),
        retry=retry, setup=setup or None, budget=task.budget, agent_budget=agent.budget,
    )


def _inherit(field: str, task: TaskConfig, agent: AgentConfig, config: Config) -> float | None:
    """The task's value if it sets one, else the agent's, else the config's. A value set to
    0 (None once validated) means "no limit" and still counts as set."""
    for layer in (task, agent):
        if field in layer.model_fields_set:
            return getattr(layer, field)
    return getattr(config, field)
