"""Sinks: consumers of wf's events other than webhooks, found through the ``wf.sinks``
entry-point group.

A sink is an endpoint like a URL (``[[hooks]]`` with ``sink = "KIND"`` instead of ``url``):
the same patterns, the same durable deliveries, retries, dead letters and replay. The
interface, which a plugin implements:

* the entry point names a factory ``factory(options: dict, context: SinkContext) -> Sink``,
  called once per endpoint when delivery starts; a ``ValueError`` it raises about its
  ``options`` becomes a one-line config error (exit 2);
* ``Sink.deliver(message)`` takes one ``payload.Message`` (``id``, ``seq``, ``type``,
  ``timestamp``, ``body``: the standard body) and returns when it is stored; any exception
  is a failed attempt, retried on the endpoint's schedule. It may be called from several
  threads at once (``max_in_flight``), and with the same message again (at least once: the
  ``id`` tells repeats apart);
* ``Sink.close()`` when delivery stops.

Built in: ``jsonl`` (``JsonLinesSink``, one JSON object per line appended to a file, for log
shippers) and ``desktop`` (``notify-send``, what ``[notify] desktop = true`` uses).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from wf.errors import ConfigError
from wf.hooks.payload import Message

GROUP = "wf.sinks"


@dataclass(frozen=True)
class SinkContext:
    repo_root: Path
    state_dir: Path


class Sink(Protocol):
    def deliver(self, message: Message) -> None:
        """Store ``message``; raise on failure (the attempt is retried)."""

    def close(self) -> None: ...


Factory = Callable[[dict[str, Any], SinkContext], Sink]


class JsonLinesSink:
    """Appends ``{"id", **body}`` as one line per message to ``path`` (relative to the
    repository's root; default ``<state dir>/events.jsonl``), flushed and, with
    ``fsync = true``, synced before the delivery counts."""

    def __init__(self, options: dict[str, Any], context: SinkContext) -> None:
        unknown = set(options) - {"path", "fsync"}
        if unknown:
            raise ValueError(f"unknown option {sorted(unknown)[0]!r} (jsonl takes path, fsync)")
        raw = options.get("path", str(context.state_dir / "events.jsonl"))
        if not isinstance(raw, str) or not raw:
            raise ValueError("path must be a file name")
        self.path = (context.repo_root / raw).resolve()
        self.fsync = bool(options.get("fsync", False))
        self._lock = threading.Lock()
        self._file: Any = None

    def deliver(self, message: Message) -> None:
        line = json.dumps({"id": message.id, **message.body}, separators=(",", ":"),
                          default=str) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(line)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class DesktopSink:
    """A desktop notification per message, through ``notify-send`` (never retried)."""

    def __init__(self, options: dict[str, Any], context: SinkContext) -> None:
        self.program = shutil.which("notify-send")
        if self.program is None:
            raise FileNotFoundError("notify-send")

    def deliver(self, message: Message) -> None:
        from wf.cli.output import event_text
        from wf.model import Event

        body = message.body
        e = Event(message.seq, body.get("stream", ""), 0, message.type, message.timestamp,
                  body.get("data") or {})
        text = event_text(e).split("  ", 1)[-1]
        subprocess.run([self.program, "--app-name=wf", "wf needs you", text], timeout=5,
                       check=True, stdin=subprocess.DEVNULL, capture_output=True)

    def close(self) -> None:
        pass


BUILTIN: dict[str, Factory] = {"jsonl": JsonLinesSink, "desktop": DesktopSink}


def load_sink(kind: str, options: dict[str, Any], context: SinkContext, *,
              endpoint: str) -> Sink:
    """The sink ``kind`` names, built with ``options``; ConfigError (one line, exit 2) when
    no sink has that name or it refuses its options."""
    factory = BUILTIN.get(kind)
    if factory is None:
        found = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
        if not found:
            names = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=GROUP))})
            raise ConfigError(f"[[hooks]] {endpoint!r}: no sink named {kind!r} (this wf has: "
                              f"{', '.join(names)})", hint="a plugin adds one through the "
                              "wf.sinks entry-point group")
        try:
            factory = found[0].load()
        except Exception as exc:
            raise ConfigError(f"[[hooks]] {endpoint!r}: the sink {kind!r} could not be "
                              f"loaded: {type(exc).__name__}: {exc}") from exc
    try:
        return factory(dict(options), context)
    except ValueError as exc:
        raise ConfigError(f"[[hooks]] {endpoint!r}: sink {kind!r}: {exc}") from exc
