"""Reading an attempt's output through its adapter, for the event log and for ``wf logs``.

The shim writes the agent's output to ``<n>.log`` (rotated to ``<n>.log.1``). A
``TranscriptRecorder`` follows that file while the attempt runs and turns what the adapter
understands into ``agent.*`` events. Each event's idempotency key is its ordinal in the
attempt's output (``agent:<task>:<n>:<k>``), and the output is the same file whoever reads it,
so an engine that adopts a running attempt after a crash reads it again from the start and
the store drops what was already recorded: every event is in the log once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from wf.agents.adapter import EVENT_KINDS, Adapter, Entry, Verdict, clip
from wf.agents.process import AttemptFiles
from wf.model import FailureKind, NewEvent, task_stream


class TranscriptRecorder:
    """Follows one attempt's log; ``poll`` returns the new events, ``verdict`` judges the end."""

    def __init__(self, adapter: Adapter, files: AttemptFiles, task_id: str, n: int) -> None:
        self.reader = adapter.reader()
        self.resume_lost = re.compile(adapter.resume_lost) if adapter.resume_lost else None
        self.lost: str | None = None  # the CLI's words when the session to resume was gone
        self.files, self.task_id, self.n = files, task_id, n
        self.pos = 0
        self.inode: int | None = None
        self.partial = b""
        self.count = 0

    def poll(self, final: bool = False) -> list[NewEvent]:
        """Events for the lines written since the last call; with ``final`` (the agent has
        exited) an unterminated last line counts too."""
        data = self._read_new()
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        events = []
        for raw in lines:
            for entry in self._entries(raw.decode("utf-8", "replace")):
                if entry.kind in EVENT_KINDS:
                    self.count += 1
                    events.append(NewEvent(
                        task_stream(self.task_id), f"agent.{entry.kind}",
                        {"n": self.n, **entry.event_data()},
                        idempotency_key=f"agent:{self.task_id}:{self.n}:{self.count}"))
        return events

    def _entries(self, line: str) -> list[Entry]:
        entries = self.reader.feed(line)
        if self.resume_lost is not None and self.resume_lost.search(line):
            # The session wf asked to resume is gone: forget it, so the next attempt starts
            # afresh instead of failing the same way.
            self.lost = " ".join(line.split())
            entries = [Entry("session", {"session_id": None}), *entries]
        return entries

    def verdict(self, exit_code: int | None) -> Verdict | None:
        if self.lost is not None:
            return Verdict(FailureKind.AGENT_ERROR, f"the agent's session could not be resumed "
                           f"({clip(self.lost, 200)}); the next attempt starts afresh")
        return self.reader.verdict(exit_code)

    def _read_new(self) -> bytes:
        log, rotated = self.files.log, self.files.log.with_name(self.files.log.name + ".1")
        try:
            st = os.stat(log)
        except FileNotFoundError:
            return b""
        out = b""
        if self.inode is None:  # first read: what was rotated away before comes first
            out += _read_from(rotated, 0)
        elif st.st_ino != self.inode or st.st_size < self.pos:  # rotated since the last read
            out += _read_from(rotated, self.pos)
            self.pos = 0
        self.inode = st.st_ino
        chunk = _read_from(log, self.pos)
        self.pos += len(chunk)
        return out + chunk


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def transcript(adapter: Adapter, paths: list[Path]) -> Iterator[Entry]:
    """Every entry of a finished or running attempt's output, oldest first."""
    reader = adapter.reader()
    for path in paths:
        for raw in _read_from(path, 0).decode("utf-8", "replace").splitlines():
            yield from reader.feed(raw)
