"""What a delivery carries: the ``Message`` for one event and one endpoint, and its body.

``standard`` (the default) is Standard Webhooks' shape, ``{"type", "timestamp", "data"}``,
with wf's own fields beside them: ``seq`` (the event's place in this clone's log),
``stream``, ``task`` (when the event is a task's) and ``repo`` (the repository's folder name).
``slack`` is an incoming-webhook chat message: ``{"text": ...}`` with one ``mrkdwn`` section
block, the line ``wf events`` prints for the event. Bodies are derived from the event alone,
so every retry and replay sends the same bytes.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from wf.hooks.signing import message_id
from wf.model import Event


@dataclass(frozen=True)
class Message:
    """One event as an endpoint receives it; ``id`` is the same on every try."""

    id: str
    seq: int
    type: str
    timestamp: float
    body: dict[str, Any]


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def standard_body(e: Event, repo: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": e.type, "timestamp": iso(e.ts), "data": e.data,
                            "seq": e.seq, "stream": e.stream, "repo": repo}
    if e.task_id and e.stream.startswith("task:"):
        body["task"] = e.task_id
    return body


def slack_body(e: Event, repo: str) -> dict[str, Any]:
    from wf.cli.output import event_text  # the one place an event is put in words

    line = event_text(e).split("  ", 1)[-1]  # without the clock: the chat shows the time
    text = f"wf ({repo}): {line}"
    return {"text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def message(e: Event, endpoint: str, fmt: str, repo: str) -> Message:
    body = slack_body(e, repo) if fmt == "slack" else standard_body(e, repo)
    return Message(message_id(endpoint, e.seq, e.idempotency_key), e.seq, e.type, e.ts, body)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def test_event(ts: float) -> Event:
    """The event ``wf hooks test`` sends: not in the log (seq 0), type ``hook.test``."""
    return Event(0, "hooks", 0, "hook.test", ts,
                 {"message": "a test event from `wf hooks test`"}, None)
