"""A Temporal client for ``[engine]``: the one place wf connects to a server.

The API key is read from the environment variable that ``api_key_env`` names, here and only
here; it goes to the SDK and nowhere else (never a message, a log line or a payload). With a
key, TLS is always on (the SDK's rule when ``tls`` is not forced on: a key never travels in
clear).

Errors, both exit 2 (a setting to fix or a server to start; wf.errors has no network class):

- ``ConfigError``: the API key's variable is not set (the message names the variable);
- ``ServerUnreachable`` (a ConfigError): no answer within ``CONNECT_TIMEOUT``, a refused
  connection, a failed TLS handshake, a rejected key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wf.config import EngineConfig
from wf.errors import ConfigError
from wf.temporal import require

if TYPE_CHECKING:
    from temporalio.client import Client

CONNECT_TIMEOUT = 5.0
UNREACHABLE_HINT = "start one with `wf temporal dev`, or check [engine] address"


class ServerUnreachable(ConfigError):
    """The Temporal server at ``[engine] address`` did not answer, or refused the client."""


def api_key(cfg: EngineConfig, environ: Mapping[str, str]) -> str | None:
    """The API key from the variable ``cfg.api_key_env`` names; None when none is named. An
    unset or empty variable is a ConfigError naming the variable, never a value."""
    if cfg.api_key_env is None:
        return None
    key = environ.get(cfg.api_key_env, "").strip()
    if not key:
        raise ConfigError(f"environment variable {cfg.api_key_env} is not set; [engine] "
                          "api_key_env names it as the Temporal API key",
                          hint=f"export {cfg.api_key_env}=... with your key, or remove "
                               "api_key_env")
    return key


async def connect(cfg: EngineConfig, environ: Mapping[str, str], *,
                  timeout: float = CONNECT_TIMEOUT, **options: Any) -> Client:
    """A client connected to ``cfg.address`` in ``cfg.namespace``; ``options`` go to
    ``Client.connect`` as they are (an identity, interceptors); the data converter is wf's
    (``convert.py``) unless one is given.

    Gives up after ``timeout`` seconds with ``ServerUnreachable``; cancelling the caller
    cancels the attempt at once.
    """
    require()
    from temporalio.client import Client

    from wf.temporal.convert import DATA_CONVERTER

    options.setdefault("data_converter", DATA_CONVERTER)
    key = api_key(cfg, environ)
    where = f"{cfg.address} (namespace {cfg.namespace})"
    try:
        return await asyncio.wait_for(
            Client.connect(cfg.address, namespace=cfg.namespace, api_key=key,
                           tls=True if cfg.tls else None, **options),
            timeout)
    except TimeoutError as exc:
        raise ServerUnreachable(f"cannot reach the Temporal server at {where}: no answer "
                                f"within {timeout:g} s", hint=UNREACHABLE_HINT) from exc
    except RuntimeError as exc:  # the SDK's core reports every connect failure this way
        reason = short_reason(str(exc), key)
        raise ServerUnreachable(f"cannot reach the Temporal server at {where}: {reason}",
                                hint=UNREACHABLE_HINT) from exc


# The core's words -> what a person should read; the first that matches wins.
_REASONS = (
    (re.compile(r"connection refused", re.I), "connection refused"),
    (re.compile(r"dns error|failed to lookup|name or service not known", re.I),
     "unknown host"),
    (re.compile(r"certificate|tls|ssl|handshake", re.I), "TLS handshake failed"),
    (re.compile(r"unauthenticated|permission ?denied|unauthorized", re.I),
     "the server refused the credentials"),
    (re.compile(r"timed? ?out|deadline", re.I), "timed out"),
)


def short_reason(text: str, secret: str | None = None) -> str:
    """One short line from the SDK's connect error (``text``), with ``secret`` blanked should
    the error ever quote it."""
    if secret:
        text = text.replace(secret, "***")
    for pattern, reason in _REASONS:
        if pattern.search(text):
            return reason
    line = " ".join(text.removeprefix("Failed client connect:").split())
    return line if len(line) <= 160 else line[:159] + "…"
