"""Load wf's configuration: wf.toml (or ``[tool.wf]``) with ``WF_*`` overrides.

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
tomllib and pydantic errors are mapped (in ``wf.configerrors``) and chained with ``from exc``.
Tasks files, whose top-level keys are the fourth layer, are read by ``wf.taskload``, which
also resolves tasks into ``TaskSpec`` values.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wf.config import Config
from wf.configerrors import (
    Loc,
    Where,
    brief,
    describe_errors,
    fail,
    join,
    kind_of,
    no_where,
    toml_path,
    toml_reason,
)
from wf.errors import ConfigError
from wf.model import check_task_id

REPO_CONFIG_NAME = "wf.toml"
PYPROJECT_NAME = "pyproject.toml"
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32  # tables and arrays within each other; real configs use 3

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
    "WF_ENGINE": ("engine", "kind"),
    "WF_TEMPORAL_ADDRESS": ("engine", "address"),
    "WF_TEMPORAL_NAMESPACE": ("engine", "namespace"),
    "WF_TEMPORAL_TASK_QUEUE": ("engine", "task_queue"),
    "WF_TEMPORAL_HOST": ("engine", "host"),
    "WF_POOL": ("worktrees", "pool"),
}
_TEXT_VARS = frozenset({"WF_BASE", "WF_AGENT", "WF_WORKTREE_ROOT", "WF_ENGINE",
                        "WF_TEMPORAL_ADDRESS", "WF_TEMPORAL_NAMESPACE",
                        "WF_TEMPORAL_TASK_QUEUE", "WF_TEMPORAL_HOST"})


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
        config = validate_config(read_toml(path, REPO_CONFIG_NAME), REPO_CONFIG_NAME)
    else:
        config = validate_config(_tool_wf(path) or {}, PYPROJECT_NAME, ("tool", "wf"))
    # A hook's missing secret is refused where delivery starts (wf.hooks.manage), not here:
    # reading the log (wf status, wf hooks dlq) needs no secret.
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
            data = merge(config, override)
            check_values(data, no_where)
            config = Config.model_validate(data)
        except ConfigError as exc:
            raise fail(f"environment variable {var}={brief(raw)}: {exc.message}") from exc
        except ValidationError as exc:
            raise fail(f"environment variable {var}={brief(raw)}: "
                       f"{describe_errors(exc, no_where)}") from exc
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise fail(f"environment variable {var}={brief(raw)}: {exc}") from exc
    return config


def _number_or_text(text: str) -> Any:
    """An env value for a numeric field: a number when it reads as one (so "0" and "90" work
    for durations), else the text for the field's own parser ("5m")."""
    for parse in (int, float):
        try:
            return parse(text)
        except (ValueError, OverflowError):
            continue
    return text


# --- reading files ------------------------------------------------------------------------


def _tool_wf(pyproject: Path) -> dict[str, Any] | None:
    tool = read_toml(pyproject, PYPROJECT_NAME).get("tool")
    if not isinstance(tool, dict) or "wf" not in tool:
        return None
    if not isinstance(tool["wf"], dict):
        raise fail(f"{PYPROJECT_NAME}: [tool.wf] must be a table, got {kind_of(tool['wf'])}")
    return tool["wf"]


def read_toml(path: Path, name: str) -> dict[str, Any]:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise fail(f"{name}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise fail(f"{name}: is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise fail(f"{name}: too large ({info.st_size} bytes, at most {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise fail(f"{name}: no such file") from exc
    except PermissionError as exc:
        raise fail(f"{name}: cannot read: permission denied") from exc
    except OSError as exc:
        raise fail(f"{name}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise fail(f"{name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                   f"{exc.start})") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"{name}: invalid TOML {toml_reason(exc)}") from exc
    except RecursionError as exc:
        raise fail(f"{name}: invalid TOML: values are nested too deeply") from exc
    if _depth(document) > MAX_DEPTH:  # dotted keys nest without recursion in tomllib
        raise fail(f"{name}: values are nested more than {MAX_DEPTH} levels deep")
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


# --- validating ---------------------------------------------------------------------------


def validate_config(data: dict[str, Any], name: str, prefix: Loc = ()) -> Config:
    def where(loc: Loc, table: bool) -> str:
        return toml_path(loc, data, prefix, table)

    check_values(data, where, name + ": ")
    _check_agents(data.get("agents"), where, name + ": ")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise fail(f"{name}: {describe_errors(exc, where, Config)}",
                   hint=_config_hint(exc)) from exc
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise fail(f"{name}: invalid configuration: {exc}") from exc


def _check_agents(agents: Any, where: Where, prefix: str) -> None:
    """Agent names follow the task-id pattern; env names must be usable by exec."""
    for agent, table in agents.items() if isinstance(agents, dict) else ():
        try:
            check_task_id(agent)
        except ValueError as exc:
            raise fail(f"{prefix}{where(('agents', agent), True)}: invalid agent name "
                       f"{brief(agent)}: use 1-63 characters of a-z 0-9 . _ -, starting "
                       "with a letter or digit") from exc
        env = table.get("env") if isinstance(table, dict) else None
        for var in env if isinstance(env, dict) else ():
            if not var or "=" in var or "\x00" in var:
                raise fail(f"{prefix}{where(('agents', agent, 'env'), False)}: invalid "
                           f"variable name {brief(var)}")


def _config_hint(exc: ValidationError) -> str | None:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "extra_forbidden" and first["loc"] in (("task",), ("tasks",)):
        return "tasks belong in a tasks file: wf run -f tasks.toml"
    return None


def merge(config: Config, override: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as data with ``override`` on top; tables merge one level deep. Unset fields
    stay unset, so an agent's own timeouts remain distinguishable from inherited ones."""
    data = config.model_dump(exclude_unset=True)
    for key, value in override.items():
        old = data.get(key)
        data[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) \
            else value
    return data


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def check_values(value: Any, where: Where, prefix: str = "", loc: Loc = ()) -> None:
    """Reject what TOML parses but no field can use: integers beyond 64 bits (the TOML spec's
    range; they would overflow float conversion), nan and inf, and NUL characters (which no
    argv, path, ref or variable name may hold)."""
    problem = None
    if isinstance(value, dict):
        if any("\x00" in key for key in value):
            problem = "NUL characters are not allowed in keys"
        for key, item in value.items():
            check_values(item, where, prefix, (*loc, key))
    elif isinstance(value, list | tuple):
        for pos, item in enumerate(value):
            check_values(item, where, prefix, (*loc, pos))
    elif isinstance(value, int) and not isinstance(value, bool) \
            and not _I64_MIN <= value <= _I64_MAX:
        problem = "integer out of range (beyond 64 bits)"
    elif isinstance(value, float) and not math.isfinite(value):
        problem = f"{value} is not allowed, use a finite number"
    elif isinstance(value, str) and "\x00" in value:
        problem = "NUL characters are not allowed"
    if problem:
        raise fail(prefix + join(where(loc, False), problem))
