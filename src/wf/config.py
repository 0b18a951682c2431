"""Configuration models: ``wf.toml`` / ``[tool.wf]`` and the sections a tasks file may override.

Loading and env overrides live in ``wf.configload``, tasks files in ``wf.taskload``, error
formatting in ``wf.configerrors``; this module only says what a valid configuration is.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wf.engine.budget import Budget, parse_budget
from wf.errors import ConfigError
from wf.hooks.config import HookConfig, NotifyConfig, check_hooks
from wf.merge_queue.policy import PolicyConfig
from wf.model import check_task_id, parse_duration
from wf.spec import RetryPolicy


def _budget(value: Any) -> Budget | None:
    """A ``budget = {...}`` table (``wf.engine.budget.parse_budget``); its one-line error
    becomes a ValueError so that the message names the file and the table."""
    if value is None:
        return None
    try:
        return parse_budget(value, "budget")
    except ConfigError as exc:
        raise ValueError(exc.message.removeprefix("budget: ").removeprefix("budget.")) from None


def _opt_duration(value: Any) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value)
    return seconds or None  # 0 means "no limit"


class AgentConfig(BaseModel):
    """An agent: the command wf runs in the task's worktree, or an agent CLI wf knows.

    Placeholders ``{prompt}``, ``{task_id}``, ``{worktree}`` and ``{attempt}`` are replaced in
    each argument; no shell is involved, so a prompt cannot inject a command. Without a
    ``command``, the adapter named by ``adapter`` (default: the agent's own name, e.g.
    ``[agents.claude]``) builds it from ``binary``, ``model``, ``args``, ``allowed_tools`` and
    ``permission_mode``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: tuple[str, ...] | None = Field(None, min_length=1,
                                            description="argv with placeholders")
    adapter: str | None = Field(None, description="agent CLI adapter: claude, codex, gemini, "
                                "opencode, aider or one from a plugin")
    binary: str | None = Field(None, description="the CLI's executable (default: its name)")
    model: str | None = Field(None, description="model passed to the CLI")
    args: tuple[str, ...] = Field((), description="extra arguments for the CLI")
    allowed_tools: tuple[str, ...] = Field((), description="tools the CLI may use unasked")
    permission_mode: str | None = Field(None, description="the CLI's permission/approval mode")
    resume: bool = Field(False, description="a retry resumes the failed attempt's session")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment")
    pass_env: tuple[str, ...] = Field((), description="names of wf's variables to pass through")
    max_parallel: int | None = Field(None, ge=1, description="cap on this agent's running tasks")
    timeout: float | None = Field(None, description="whole-attempt timeout for this agent")
    no_output_timeout: float | None = Field(None, description="silence allowed for this agent")
    budget: Budget | None = Field(None, description="cap on what all this agent's tasks use "
                                  "together: max_cost_usd, max_tokens, max_wall, on_exceed")
    adaptive: bool | None = Field(None, description="lower this agent's parallelism when its "
                                  "attempts are rate limited (default: on for agent CLIs)")

    _durations = field_validator("timeout", "no_output_timeout", mode="before")(
        classmethod(lambda cls, v: _opt_duration(v)))
    _budgets = field_validator("budget", mode="before")(classmethod(lambda cls, v: _budget(v)))


class TaskConfig(BaseModel):
    """One ``[[task]]`` table of a tasks file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(None, description="branch wf/<id> and folder name; derived if absent")
    prompt: str = Field(description="what the agent is asked to do")
    agent: str | None = Field(None, description="an [agents.NAME] or a built-in agent")
    depends_on: tuple[str, ...] = Field((), description="ids that must succeed first")
    base: str | None = Field(None, description="ref to start from (default: config base)")
    timeout: float | None = None
    no_output_timeout: float | None = None
    retry: dict[str, Any] | None = Field(None, description="overrides of [retry] fields")
    setup: tuple[str, ...] | None = Field(None, description="command run once in the worktree")
    budget: Budget | None = Field(None, description="cap on what the task's attempts use "
                                  "together: max_cost_usd, max_tokens, max_wall, on_exceed")

    _durations = field_validator("timeout", "no_output_timeout", mode="before")(
        classmethod(lambda cls, v: _opt_duration(v)))
    _budgets = field_validator("budget", mode="before")(classmethod(lambda cls, v: _budget(v)))

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return None if value is None else check_task_id(value)

    @field_validator("depends_on")
    @classmethod
    def _deps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for dep in value:
            check_task_id(dep)
        return value


class MergeConfig(BaseModel):
    """``[merge]``: the merge queue. It lands a task's branch on ``target`` only through a
    commit whose exact tree passed every ``check``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str | None = Field(None, description="branch to land on; default: the base branch")
    check: tuple[tuple[str, ...], ...] = Field(
        (), description="check commands (argv), all must exit 0; none means land untested")
    check_timeout: float | None = Field(1800.0, description="timeout of one check command")
    land: Literal["local", "push", "pr"] = Field(
        "local", description="move the branch here, push it, or merge a PR/MR on the forge")
    remote: str = Field("origin", description="remote pushed to with land = \"push\"")
    merge_method: Literal["merge", "squash", "rebase"] = Field(
        "merge", description="how the forge merges a PR/MR with land = \"pr\"")
    auto_merge: bool = Field(False, description="let the forge merge once its checks pass")
    forge_check_timeout: float | None = Field(
        3600.0, description="how long land = \"pr\" waits for the forge's checks")
    forge_poll_interval: float = Field(
        10.0, gt=0, description="first delay between two looks at the forge's checks")
    forge_checks_grace: float = Field(
        10.0, ge=0, description="with land = \"pr\" and no CI configuration in the head, how "
        "long \"no checks reported yet\" waits before it means \"no checks\"")
    auto: bool = Field(False, description="enqueue every task that succeeds")
    require_approval: bool = Field(False, description="hold each entry until `wf approve`")
    max_batch: int = Field(50, ge=1, le=1000, description="entries tested together at most")
    max_parallel_checks: int = Field(2, ge=1, le=64, description="checks running at once")
    resolve_conflicts: bool = Field(False, description="rebase and rerun the agent on conflict")
    blame: bool = Field(True, description="test first the entries whose files a failing "
                        "check's output names")

    _timeout = field_validator("check_timeout", "forge_check_timeout", mode="before")(
        classmethod(lambda cls, v: _opt_duration(v)))

    @field_validator("check", mode="before")
    @classmethod
    def _checks(cls, value: Any) -> Any:
        # `check = ["pytest", "-q"]` is one command; `check = [["ruff", "."], ["pytest"]]` two.
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return (tuple(value),)
        return value

    @field_validator("forge_poll_interval", "forge_checks_grace", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return parse_duration(value)

    @property
    def enabled(self) -> bool:
        return self.auto or bool(self.check) or self.require_approval


class ProviderConfig(BaseModel):
    """``[provider]``: the forge that ``wf pr`` and ``land = "pr"`` talk to. Detected from the
    remote's URL for github.com and gitlab.com; any other host needs ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = Field(None, description='"github", "gitlab", or a plugin\'s name')
    api_url: str | None = Field(None, description="API base, e.g. https://HOST/api/v3 (GHES)")
    repo: str | None = Field(None, description="owner/name or group/sub/project")
    remote: str = Field("origin", description="git remote that branches are pushed to")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9,
               "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "tib": 2**40}


def parse_size(value: Any) -> int:
    """Bytes from ``"20GB"``, ``"500MiB"``, ``"1.5G"`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if match and match.group(2).lower() in _SIZE_UNITS:
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"not a size: {value!r} (use e.g. \"20GB\", \"500MiB\" or bytes)")


class WorktreesConfig(BaseModel):
    """``[worktrees]``: the pool of warm worktrees (docs/configuration.md, "The worktree
    pool"). With ``pool = 0`` (the default) every task gets a new worktree, as before."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: int = Field(0, ge=0, le=256, description="prepared worktrees kept ready")
    setup_inputs: tuple[str, ...] = Field(
        (), description="files whose content decides whether a prepared worktree's setup "
        "is still valid (e.g. package-lock.json)")
    keep: tuple[str, ...] = Field(
        (), description="ignored folders that survive from one task to the next "
        "(gitignore patterns, e.g. \"/node_modules\")")
    pool_max_disk: int | None = Field(None, description="size cap of the idle pooled "
                                      "worktrees, e.g. \"20GB\"")
    return_on_success: bool = Field(
        False, description="a task that succeeded gives its pooled worktree back at once "
        "(its work is committed on its branch) instead of at `wf clean`")

    @field_validator("pool_max_disk", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value) or None

    @field_validator("setup_inputs", "keep")
    @classmethod
    def _relative(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            parts = item.strip("/").split("/")
            if not item.strip() or ".." in parts or ".git" in parts or "\0" in item:
                raise ValueError(f"must be paths inside the repository (got {item[:80]!r})")
        return value


ENGINE_KINDS = ("local", "temporal")  # what ``wf.engine.build_engine`` can build

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TASK_QUEUE = re.compile(r"[a-z0-9._-]{1,64}")


class EngineConfig(BaseModel):
    """``[engine]``: which engine drives the tasks. ``"local"`` (the default) runs everything
    in this process on this machine, with no server; ``"temporal"`` runs them on a Temporal
    server, with ``wf worker`` on each machine (docs/temporal.md). The other fields are the
    Temporal engine's; the local engine ignores them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("local", description=f"one of {', '.join(ENGINE_KINDS)}")
    address: str = Field("127.0.0.1:7233", description="the Temporal server's HOST:PORT")
    namespace: str = Field("default", min_length=1, description="the Temporal namespace")
    task_queue: str = Field("wf", description="prefix of every task queue and workflow id "
                            "wf uses, so several repositories can share a namespace")
    tls: bool = Field(False, description="TLS to the server (Temporal Cloud needs it); "
                      "always on when api_key_env is set")
    api_key_env: str | None = Field(None, description="NAME of the environment variable "
                                    "holding the API key; the key itself is never in config")
    host: str | None = Field(None, description="this machine's name for its own task queue; "
                             "default: the hostname")
    heartbeat_timeout: float = Field(10.0, ge=1.0, description="a worker whose attempt stops "
                                     "heartbeating this long is taken as gone")
    host_lost_after: float = Field(300.0, description="how long a task waits for the host "
                                   "holding its worktree before it is prepared again on "
                                   "another host")
    continue_after: int = Field(10_000, ge=10, le=40_000, description="history events "
                                "after which the repository workflow continues as new (the "
                                "server's cap is 51,200; lower only to test)")

    _durations = field_validator("heartbeat_timeout", "host_lost_after", mode="before")(
        classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in ENGINE_KINDS:
            raise ValueError(f"unknown engine {value!r}; this wf has: {', '.join(ENGINE_KINDS)}")
        return value

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535 \
                or any(c.isspace() for c in host):
            raise ValueError(f"must be HOST:PORT, e.g. \"127.0.0.1:7233\" "
                             f"(got {value[:80]!r})")
        return value.strip()

    @field_validator("task_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _TASK_QUEUE.fullmatch(value):
            raise ValueError(f"must be 1-64 characters of a-z 0-9 . _ - "
                             f"(got {value[:80]!r})")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        # The value is left out of the message: someone may have pasted the key itself here.
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable "
                             "(letters, digits and _, e.g. \"TEMPORAL_API_KEY\"), never the "
                             "key itself")
        return value

    @field_validator("host")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_NAME.fullmatch(value):
            raise ValueError(f"must be 1-128 characters of A-Z a-z 0-9 . _ - "
                             f"(got {value[:80]!r})")
        return value

    @field_validator("host_lost_after")
    @classmethod
    def _after_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_timeout")  # absent when it was invalid itself
        if heartbeat is not None and value < heartbeat:
            raise ValueError(f"must be at least heartbeat_timeout ({heartbeat:g} s): a host "
                             "is only known lost once its heartbeats stopped")
        return value

    def host_name(self) -> str:
        """This machine's name in task queues: ``host``, else the hostname with every
        character outside A-Z a-z 0-9 . _ - replaced by ``-`` (never empty)."""
        if self.host is not None:
            return self.host
        return re.sub(r"[^A-Za-z0-9._-]", "-", os.uname().nodename)[:128] or "localhost"


class Config(BaseModel):
    """The whole configuration. Every field can be set in wf.toml, in ``[tool.wf]`` of
    pyproject.toml, in a tasks file (for that run), or by a ``WF_<FIELD>`` variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_parallel: int = Field(4, ge=1, le=1024, description="tasks running at once")
    base: str | None = Field(None, description="ref tasks start from; default the current branch")
    agent: str | None = Field(None, description="agent for tasks that name none")
    worktree_root: str = Field(
        "../{repo}.worktrees", description="folder for task worktrees, relative to the repo root")
    port_range: tuple[int, int] = Field((20000, 29999), description="WF_PORT is picked from here")
    setup: tuple[str, ...] | None = Field(None, description="command run once per new worktree")
    timeout: float | None = Field(3600.0, description="whole-attempt timeout, 0 for none")
    no_output_timeout: float | None = Field(900.0, description="silence allowed, 0 for none")
    log_max_bytes: int = Field(20 * 1024 * 1024, ge=4096, description="agent log size cap")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    worktrees: WorktreesConfig = Field(default_factory=WorktreesConfig)
    hooks: tuple[HookConfig, ...] = Field((), description="[[hooks]]: endpoints wf's events "
                                          "are delivered to (docs/hooks.md)")
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    budget: Budget | None = Field(None, description="[budget]: cap on what the whole run "
                                  "uses: max_cost_usd, max_tokens, max_wall, on_exceed")

    _budgets = field_validator("budget", mode="before")(classmethod(lambda cls, v: _budget(v)))
    _hooks = field_validator("hooks")(classmethod(lambda cls, v: check_hooks(v)))

    _durations = field_validator("timeout", "no_output_timeout", mode="before")(
        classmethod(lambda cls, v: _opt_duration(v)))

    @model_validator(mode="after")
    def _ports(self) -> Config:
        low, high = self.port_range
        if not (1024 <= low <= high <= 65535):
            raise ValueError("port_range must be two ports [low, high] with 1024 <= low <= high")
        return self

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, value: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        for name in value:
            check_task_id(name)  # agent names follow the same safe pattern
        return value
