"""Load wf's configuration and tasks files, and resolve tasks into ``TaskSpec`` values.

Precedence, lowest first::

    built-in defaults
    < wf.toml at the repo root   (or, only when there is no wf.toml, [tool.wf] of pyproject.toml)
    < WF_* environment variables (the fields listed in ENV_VARS; empty values are ignored)
    < top-level keys of a tasks file (for that run only)
    < command-line flags         (applied by the caller)

When a later layer sets a table (``[retry]``, ``[agents]``), it merges key by key, one level
deep: a ``[retry]`` field replaces that field, an ``[agents.NAME]`` table replaces that whole
agent. Everything else replaces the earlier value.

Every problem in the input becomes a one-line ``ConfigError`` that names the file and the key;
tomllib and pydantic errors are mapped here and chained with ``from exc``.
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import os
import re
import stat
import tomllib
import typing
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from wf.agents.builtin import resolve_agent
from wf.config import AgentConfig, Config, TaskConfig
from wf.errors import ConfigError
from wf.model import check_task_id
from wf.spec import RetryPolicy, TaskSpec

REPO_CONFIG_NAME = "wf.toml"
PYPROJECT_NAME = "pyproject.toml"
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32  # tables and arrays within each other; real configs use 3
SLUG_MAX = 40

# Variable -> path of the field it sets. Other WF_* variables (WF_TASK_ID, WF_PORT, ... that
# agents receive) are not configuration and are ignored.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "WF_MAX_PARALLEL": ("max_parallel",),
    "WF_BASE": ("base",),
    "WF_AGENT": ("agent",),
    "WF_WORKTREE_ROOT": ("worktree_root",),
    "WF_TIMEOUT": ("timeout",),
    "WF_NO_OUTPUT_TIMEOUT": ("no_output_timeout",),
    "WF_LOG_MAX_BYTES": ("log_max_bytes",),
    "WF_RETRY_MAXIMUM_ATTEMPTS": ("retry", "maximum_attempts"),
    "WF_RETRY_INITIAL_INTERVAL": ("retry", "initial_interval"),
    "WF_RETRY_BACKOFF_COEFFICIENT": ("retry", "backoff_coefficient"),
    "WF_RETRY_MAXIMUM_INTERVAL": ("retry", "maximum_interval"),
    "WF_RETRY_JITTER": ("retry", "jitter"),
}
_TEXT_VARS = frozenset({"WF_BASE", "WF_AGENT", "WF_WORKTREE_ROOT"})

Loc = tuple[int | str, ...]
Where = Callable[[Loc, bool], str]  # (pydantic loc, loc names a table) -> "[retry].jitter"


# --- public API ---------------------------------------------------------------------------

def find_repo_config_file(repo_root: Path) -> Path | None:
    """The file ``load_config`` reads: ``wf.toml`` if it exists (whatever it holds), else
    ``pyproject.toml`` if it has a ``[tool.wf]`` table, else None. A malformed pyproject.toml
    is a ConfigError, since whether it configures wf cannot be known."""
    wf_toml = Path(repo_root) / REPO_CONFIG_NAME
    if os.path.lexists(wf_toml):  # even a folder or a broken link: reading it says what is wrong
        return wf_toml
    pyproject = Path(repo_root) / PYPROJECT_NAME
    if os.path.lexists(pyproject) and _tool_wf(pyproject) is not None:
        return pyproject
    return None


def load_config(repo_root: Path, env: Mapping[str, str] | None = None) -> Config:
    """The repo's configuration (wf.toml, else [tool.wf], else defaults) with ``WF_*``
    overrides from ``env`` (default ``os.environ``) applied."""
    path = find_repo_config_file(repo_root)
    if path is None:
        config = Config()
    elif path.name == REPO_CONFIG_NAME:
        config = _validate_config(_read_toml(path, REPO_CONFIG_NAME), REPO_CONFIG_NAME)
    else:
        config = _validate_config(_tool_wf(path) or {}, PYPROJECT_NAME, ("tool", "wf"))
    return apply_env_overrides(config, os.environ if env is None else env)


def apply_env_overrides(config: Config, env: Mapping[str, str]) -> Config:
    """``config`` with the variables of ``ENV_VARS`` applied; a bad value is a ConfigError
    naming the variable."""
    for var, path in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or not raw.strip():
            continue
        value: Any = raw if var in _TEXT_VARS else _number_or_text(raw.strip())
        override: dict[str, Any] = {path[0]: value if len(path) == 1 else {path[1]: value}}
        try:
            data = _merge(config, override)
            _check_values(data, _no_where)
            config = Config.model_validate(data)
        except ConfigError as exc:
            raise _fail(f"environment variable {var}={_brief(raw)}: {exc.message}") from exc
        except ValidationError as exc:
            raise _fail(f"environment variable {var}={_brief(raw)}: "
                        f"{_describe_errors(exc, _no_where)}") from exc
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise _fail(f"environment variable {var}={_brief(raw)}: {exc}") from exc
    return config


def load_tasks_file(path: Path, config: Config) -> tuple[Config, list[TaskConfig]]:
    """Read a tasks file: its ``[[task]]`` tables, and the configuration for this run, which is
    ``config`` overridden by the file's top-level keys and sections."""
    name = str(path)
    data = _read_toml(Path(path), name)
    raw_tasks = data.pop("task", None)
    if raw_tasks is None or raw_tasks == []:
        hint = "did you mean [[task]] (singular)?" if "tasks" in data else \
            'add one per task: [[task]] then prompt = "..."'
        raise _fail(f"no [[task]] tables in {name}", hint=hint)
    if not isinstance(raw_tasks, list):
        raise _fail(f"{name}: 'task' must be an array of tables written [[task]], "
                    f"got {_kind(raw_tasks)}")
    run_config = _validate_config(_merge(config, data), name) if data else config
    tasks = [_validate_task(raw, index, name) for index, raw in enumerate(raw_tasks, 1)]
    for index, task in enumerate(tasks, 1):
        if task.retry:
            where = _task_where(index, task.id)
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
        raise _fail(f"the number of tasks must be at least 1, got {n}")
    if not prompt.strip():
        raise _fail("the prompt is empty")
    slug = prompt_slug(prompt)
    numbered = re.compile(re.escape(slug) + r"-([0-9]+)")
    used = [int(m.group(1)) for tid in existing_ids if (m := numbered.fullmatch(tid))]
    first = max(used, default=0) + 1
    extra = {"agent": agent} if agent else {}
    try:
        return [TaskConfig(id=f"{slug}-{k}", prompt=prompt, **extra)
                for k in range(first, first + n)]
    except ValidationError as exc:
        raise _fail(f"cannot number more tasks for {slug!r}: {_describe_errors(exc, _no_where)}"
                    ) from exc


def prompt_slug(prompt: str) -> str:
    """A task id made from a prompt: lowercase ASCII letters, digits and '-', at most 40
    characters, "task" if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "task"


# --- reading files ------------------------------------------------------------------------

def _tool_wf(pyproject: Path) -> dict[str, Any] | None:
    tool = _read_toml(pyproject, PYPROJECT_NAME).get("tool")
    if not isinstance(tool, dict) or "wf" not in tool:
        return None
    if not isinstance(tool["wf"], dict):
        raise _fail(f"{PYPROJECT_NAME}: [tool.wf] must be a table, got {_kind(tool['wf'])}")
    return tool["wf"]


def _read_toml(path: Path, name: str) -> dict[str, Any]:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _fail(f"{name}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(f"{name}: is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise _fail(f"{name}: too large ({info.st_size} bytes, at most {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise _fail(f"{name}: no such file") from exc
    except PermissionError as exc:
        raise _fail(f"{name}: cannot read: permission denied") from exc
    except OSError as exc:
        raise _fail(f"{name}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _fail(f"{name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start})") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"{name}: invalid TOML {_toml_reason(exc)}") from exc
    except RecursionError as exc:
        raise _fail(f"{name}: invalid TOML: values are nested too deeply") from exc
    if _depth(document) > MAX_DEPTH:  # dotted keys nest without recursion in tomllib
        raise _fail(f"{name}: values are nested more than {MAX_DEPTH} levels deep")
    return document


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest in ``value``, found without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH and isinstance(item, dict | list):
            stack.extend((child, depth + 1) for child in
                         (item.values() if isinstance(item, dict) else item))
    return deepest


_TOML_POS = re.compile(r"(?P<reason>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)"
                       r"|(?P<end>end of document))\)\s*", re.S)


def _toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    """'at line L, column C: reason' from tomllib's 'Reason (at line L, column C)'."""
    text = str(exc)
    match = _TOML_POS.fullmatch(text)
    if match is None:
        return f": {_lower_first(text)}"
    where = "at end of document" if match["end"] else \
        f"at line {match['line']}, column {match['col']}"
    return f"{where}: {_lower_first(match['reason'])}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


# --- validating ---------------------------------------------------------------------------

def _validate_config(data: dict[str, Any], name: str, prefix: Loc = ()) -> Config:
    def where(loc: Loc, table: bool) -> str:
        return _toml_path(loc, data, prefix, table)

    _check_values(data, where, name + ": ")
    _check_agents(data.get("agents"), where, name + ": ")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _fail(f"{name}: {_describe_errors(exc, where, Config)}",
                    hint=_config_hint(exc)) from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise _fail(f"{name}: invalid configuration: {exc}") from exc


def _check_agents(agents: Any, where: Where, prefix: str) -> None:
    """Agent names follow the task-id pattern; env names must be usable by exec."""
    for agent, table in agents.items() if isinstance(agents, dict) else ():
        try:
            check_task_id(agent)
        except ValueError as exc:
            raise _fail(f"{prefix}{where(('agents', agent), True)}: invalid agent name "
                        f"{_brief(agent)}: use 1-63 characters of a-z 0-9 . _ -, starting "
                        "with a letter or digit") from exc
        env = table.get("env") if isinstance(table, dict) else None
        for var in env if isinstance(env, dict) else ():
            if not var or "=" in var or "\x00" in var:
                raise _fail(f"{prefix}{where(('agents', agent, 'env'), False)}: invalid "
                            f"variable name {_brief(var)}")


def _config_hint(exc: ValidationError) -> str | None:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "extra_forbidden" and first["loc"] in (("task",), ("tasks",)):
        return "tasks belong in a tasks file: wf run -f tasks.toml"
    return None


def _merge(config: Config, override: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as data with ``override`` on top; tables merge one level deep. Unset fields
    stay unset, so an agent's own timeouts remain distinguishable from inherited ones."""
    data = config.model_dump(exclude_unset=True)
    for key, value in override.items():
        old = data.get(key)
        data[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) \
            else value
    return data


def _validate_task(raw: Any, index: int, name: str) -> TaskConfig:
    if not isinstance(raw, dict):
        raise _fail(f"{name}: [[task]] #{index} must be a table, got {_kind(raw)}")
    task_id = raw.get("id")
    where = _task_where(index, task_id if isinstance(task_id, str) else None)
    _check_values(raw, where, name + ": ")
    try:
        task = TaskConfig.model_validate(raw)
    except ValidationError as exc:
        raise _fail(f"{name}: {_describe_errors(exc, where, TaskConfig)}") from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise _fail(f"{name}: {where((), True)}: {exc}") from exc
    if not task.prompt.strip():
        raise _fail(f"{name}: {where(('prompt',), False)}: the prompt is empty")
    return task


def _resolve_retry(base: RetryPolicy, overrides: Mapping[str, Any], prefix: str,
                   where: Where) -> RetryPolicy:
    try:
        return RetryPolicy.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        raise _fail(prefix + _describe_errors(exc, where, RetryPolicy)) from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise _fail(f"{prefix}{where((), True)}: {exc}") from exc


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _check_values(value: Any, where: Where, prefix: str = "", loc: Loc = ()) -> None:
    """Reject what TOML parses but no field can use: integers beyond 64 bits (the TOML spec's
    range; they would overflow float conversion), nan and inf, and NUL characters (which no
    argv, path, ref or variable name may hold)."""
    problem = None
    if isinstance(value, dict):
        if any("\x00" in key for key in value):
            problem = "NUL characters are not allowed in keys"
        for key, item in value.items():
            _check_values(item, where, prefix, (*loc, key))
    elif isinstance(value, list | tuple):
        for pos, item in enumerate(value):
            _check_values(item, where, prefix, (*loc, pos))
    elif isinstance(value, int) and not isinstance(value, bool) \
            and not _I64_MIN <= value <= _I64_MAX:
        problem = "integer out of range (beyond 64 bits)"
    elif isinstance(value, float) and not math.isfinite(value):
        problem = f"{value} is not allowed, use a finite number"
    elif isinstance(value, str) and "\x00" in value:
        problem = "NUL characters are not allowed"
    if problem:
        raise _fail(prefix + _join(where(loc, False), problem))


# --- resolving tasks ----------------------------------------------------------------------

def _assign_ids(tasks: list[TaskConfig]) -> list[str]:
    seen: dict[str, int] = {}
    for index, task in enumerate(tasks, 1):
        if task.id is not None:
            if task.id in seen:
                raise _fail(f"duplicate task id {task.id!r} (tasks #{seen[task.id]} and #{index})")
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
                raise _fail(f"task {tid!r} depends on itself")
            if dep not in known:
                shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
                raise _fail(f"task {tid!r} depends on unknown task {dep!r}",
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
        raise _fail(f"dependency cycle: {' -> '.join(_find_cycle(left, deps))}")
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
        raise _fail(f"task {tid!r} names no agent: set `agent` in wf.toml or in the task, "
                    "or pass --agent")
    agent = config.agents.get(agent_name) or builtin_agents.get(agent_name)
    if agent is None:
        known = ", ".join(sorted({*config.agents, *builtin_agents})) or "none"
        raise _fail(f"task {tid!r}: unknown agent {agent_name!r} (known: {known})")
    try:
        resolved = resolve_agent(agent_name, agent)
    except ValueError as exc:
        raise _fail(f"task {tid!r}: {exc}") from exc
    retry = config.retry
    if task.retry:
        retry = _resolve_retry(config.retry, task.retry, f"task {tid!r}: ",
                               lambda loc, table: _dotted(("retry", *loc)))
    setup = task.setup if task.setup is not None else config.setup
    return TaskSpec(
        id=tid, prompt=task.prompt, agent=agent_name, command=resolved.command,
        resume_command=resolved.resume_command, adapter=resolved.adapter,
        env=resolved.env, pass_env=resolved.pass_env, depends_on=deps,
        base=task.base or config.base or default_base,
        timeout=_inherit("timeout", task, agent, config),
        no_output_timeout=_inherit("no_output_timeout", task, agent, config),
        retry=retry, setup=setup or None,
    )


def _inherit(field: str, task: TaskConfig, agent: AgentConfig, config: Config) -> float | None:
    """The task's value if it sets one, else the agent's, else the config's. A value set to
    0 (None once validated) means "no limit" and still counts as set."""
    for layer in (task, agent):
        if field in layer.model_fields_set:
            return getattr(layer, field)
    return getattr(config, field)


# --- error text ---------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_MAX_MESSAGE = 500
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _fail(message: str, *, hint: str | None = None) -> ConfigError:
    """A ConfigError whose message is one line of sane length, whatever the input held."""
    text = _LINE_BREAKS.sub(" ", message)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE - 3] + "..."
    return ConfigError(text, hint=None if hint is None else _LINE_BREAKS.sub(" ", hint))


def _describe_errors(exc: ValidationError, where: Where,
                     model: type[BaseModel] | None = None) -> str:
    """The first error in words, an unknown key before anything else: a misspelt key is the
    cause of the "required key is missing" that comes with it."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    text = _describe(errors[0], where, model)
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _describe(error: Mapping[str, Any], where: Where, model: type[BaseModel] | None) -> str:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        table = where(loc[:-1], True)
        key = _brief(str(loc[-1]))
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(model, loc[:-1]), n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"unknown key {key} in {table}{guess}" if table
                else f"unknown top-level key {key}{guess}")
    message = _lower_first(
        str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, "))
    if kind == "missing":
        message = "required key is missing"
    elif kind in ("tuple_type", "list_type") and loc and isinstance(loc[-1], str):
        value = error.get("input")
        example = f"[{json.dumps(value)}]" if isinstance(value, str | int | float) else "[...]"
        message = f"must be a list, e.g. {_key(loc[-1])} = {example} (got {_brief(value)})"
    elif kind not in ("value_error", "assertion_error"):
        message += f" (got {_brief(error.get('input'))})"
    return _join(where(loc, False), message)


def _known_keys(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The keys the table at ``loc`` of ``model`` takes (a dict's keys, such as agent names,
    are stepped over), for "did you mean"."""
    for part in loc:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        if field is not None:
            model = _model_in(field.annotation)
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type: ``AgentConfig`` of ``dict[str, AgentConfig]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _join(place: str, message: str) -> str:
    return f"{place}: {message}" if place else message


def _no_where(loc: Loc, table: bool) -> str:
    return ""


def _toml_path(loc: Loc, data: Any, prefix: Loc = (), table: bool = False) -> str:
    """Where ``loc`` is, written as in the file: ``[agents.foo].command[0]``. Leading keys whose
    values are tables become the ``[...]`` header; ``table`` says ``loc`` itself is one."""
    tables, rest, cur = list(prefix), list(loc), data
    while (rest and isinstance(rest[0], str) and isinstance(cur, dict)
           and (table or len(rest) > 1) and isinstance(cur.get(rest[0]), dict)):
        cur = cur[rest[0]]
        tables.append(rest.pop(0))
    head = "[" + ".".join(_key(part) for part in tables) + "]" if tables else ""
    leaf = _dotted(rest)
    return f"{head}.{leaf}" if head and leaf else head or leaf


def _task_where(index: int, task_id: str | None) -> Where:
    label = f"[[task]] #{index}" + (f" (id {_brief(task_id)})" if task_id else "")

    def where(loc: Loc, table: bool) -> str:
        leaf = _dotted(loc)
        return f"{label}.{leaf}" if leaf else label
    return where


def _dotted(parts: list[int | str] | Loc) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + _key(part)
    return out


def _key(key: Any) -> str:
    text = str(key)
    if _BARE_KEY.fullmatch(text) and len(text) <= 40:
        return text
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _brief(quoted, plain=True)


def _brief(value: Any, *, plain: bool = False) -> str:
    """A short one-line rendering of a value for an error message."""
    if isinstance(value, dict):
        return "a table"
    text = value if plain else repr(value)
    text = _LINE_BREAKS.sub(" ", text)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    kinds = {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
             int: "an integer", float: "a float"}
    return kinds.get(type(value), type(value).__name__)


def _number_or_text(text: str) -> Any:
    """An env value for a numeric field: a number when it reads as one (so "0" and "90" work
    for durations), else the text for the field's own parser ("5m")."""
    for parse in (int, float):
        try:
            return parse(text)
        except (ValueError, OverflowError):
            continue
    return text
