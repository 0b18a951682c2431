"""``[[hooks]]`` and ``[notify]`` in wf.toml: endpoints that wf's events are delivered to.

An endpoint is an http(s) ``url`` (signed with the Standard Webhooks scheme, ``signing.py``)
or a ``sink`` (a ``wf.sinks`` entry point, such as the JSON-lines file sink ``jsonl``). Every
problem is a ValueError in words that ``wf.configload`` turns into one line, exit 2; a URL is
shown redacted (``redact_url``), and the secret itself is never in the file: ``secret_env``
names the variable that holds it (``check_secrets`` says when it is unset).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wf.hooks.events import check_pattern
from wf.model import check_task_id, parse_duration

# The delays after the first try, then the dead-letter queue (Standard Webhooks' schedule).
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def redact_url(url: str) -> str:
    """``url`` as it may be shown: user, password and query replaced by ``***`` (a webhook
    URL often carries its token in one of them); fragments dropped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = ("***@" if parts.username or parts.password else "") + host + port
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a valid URL ({redact_url(value)})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are accepted (got "
                         f"{(parts.scheme or 'no scheme')!r})")
    if not parts.hostname or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"not a valid URL: it needs a host and no spaces "
                         f"({redact_url(value)})")
    del port
    return value


class HookConfig(BaseModel):
    """One ``[[hooks]]`` table: where events go, which ones, signed how, retried how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the endpoint's name (wf hooks test NAME); a-z 0-9 . _ -")
    url: str | None = Field(None, description="http(s) URL events are POSTed to")
    sink: str | None = Field(None, description="a wf.sinks entry point instead of a URL, "
                             "e.g. \"jsonl\"")
    options: dict[str, Any] = Field(default_factory=dict, description="the sink's settings, "
                                    "e.g. { path = \"events.jsonl\" }")
    events: tuple[str, ...] = Field(("attention",), min_length=1, description="event types, "
                                    "globs (\"task.*\") or groups (attention, finished)")
    format: Literal["standard", "slack"] = Field("standard", description="the body: the "
                                                 "event, or a chat message")
    secret_env: str | None = Field(None, description="NAME of the variable holding the "
                                   "signing secret (whsec_<base64> or plain text)")
    schedule: tuple[float, ...] = Field(DEFAULT_SCHEDULE, max_length=50, description="delays "
                                        "after the first try, then the dead-letter queue")
    disable_after: float = Field(5 * 86400.0, description="an endpoint failing continuously "
                                 "this long is disabled (0: never)")
    max_in_flight: int = Field(4, ge=1, le=64, description="requests at once to it")
    connect_timeout: float = Field(5.0, gt=0, description="to open the connection")
    timeout: float = Field(10.0, gt=0, description="to wait for the answer")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_task_id(value)
        except ValueError:
            raise ValueError(f"invalid endpoint name {value[:40]!r}: use 1-63 characters of "
                             "a-z 0-9 . _ -, starting with a letter or digit") from None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            check_pattern(pattern)
        return value

    @field_validator("secret_env")
    @classmethod
    def _variable(cls, value: str | None) -> str | None:
        # The value stays out of the message: someone may have pasted the secret itself here.
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits "
                             "and _, e.g. \"WF_HOOK_SECRET\"), never the secret itself")
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(parse_duration(v) for v in value)
        return value

    @field_validator("disable_after", "connect_timeout", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _one_target(self) -> HookConfig:
        if (self.url is None) == (self.sink is None):
            raise ValueError(f"endpoint {self.name!r} needs either url or sink (not both)")
        if self.options and self.sink is None:
            raise ValueError(f"endpoint {self.name!r}: options are for a sink")
        return self

    @property
    def shown(self) -> str:
        """Where it delivers, as it may be shown: the redacted URL, or ``sink:KIND``."""
        return redact_url(self.url) if self.url else f"sink:{self.sink}"


class NotifyConfig(BaseModel):
    """``[notify]``: desktop notifications (``notify-send``) for ``attention`` events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    desktop: bool = Field(False, description="raise a desktop notification for attention "
                          "events where the machine has notify-send")


def check_hooks(hooks: tuple[HookConfig, ...]) -> tuple[HookConfig, ...]:
    """Names are unique (an endpoint's deliveries are recorded under its name)."""
    seen: set[str] = set()
    for hook in hooks:
        if hook.name in seen:
            raise ValueError(f"two endpoints are named {hook.name!r}; names must differ")
        seen.add(hook.name)
    return hooks


def check_secrets(hooks: tuple[HookConfig, ...], env: Mapping[str, str]) -> str | None:
    """A one-line problem when an endpoint's ``secret_env`` is not set in ``env``, else None."""
    for i, hook in enumerate(hooks):
        if hook.secret_env and not env.get(hook.secret_env):
            return (f"[[hooks]] #{i + 1} (name {hook.name!r}).secret_env: the variable "
                    f"{hook.secret_env} is not set (it holds the endpoint's signing secret)")
    return None
