"""The dashboard's copy of the log: the projection tables folded from events, advanced by
sequence number.

Nothing here imports textual, so the reading half of the dashboard is testable (and
benchmarkable) on its own. ``read_new`` does the I/O and is meant for a worker thread;
``fold`` mutates the tables and is meant for the UI thread, so the widgets never see a table
change under them. The same reducer as the store's (``projections.apply``) does the folding, so
the dashboard shows exactly what ``wf status`` would, fields added by newer event types
included.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from wf.model import Event
from wf.repository import Repo, open_store
from wf.store.projections import Projection, apply

if TYPE_CHECKING:
    from wf.store import EventStore

# Events an agent adapter may write about what the agent says and does (issue 5's contract).
TRANSCRIPT_TYPES = ("agent.message", "agent.tool")
TRANSCRIPT_KEEP = 2000  # per task: the dashboard is a window, `wf logs` has the whole story
READ_CHUNK = 2000  # events per read, so a long log loads without one long pause


class Feed:
    """Follows one repository's event log from sequence number ``seq`` on."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.p = Projection()
        self.seq = 0  # the last event folded
        self.transcripts: dict[str, deque[Event]] = {}
        self._store: EventStore | None = None
        self.hooks_disabled: dict[str, str] = {}  # endpoint -> why (an attention item)

    def read_new(self, since: int | None = None) -> list[Event]:
        """Events after ``since`` (default: the last folded), at most ``READ_CHUNK``. An empty
        list while the repository has no log yet: the dashboard waits for the first run."""
        if self._store is None:
            if not self.repo.db_path.exists():
                return []
            self._store = open_store(self.repo, create=False)
        return self._store.read(self.seq if since is None else since, limit=READ_CHUNK)

    def fold(self, events: list[Event]) -> set[str]:
        """Fold ``events`` in; return the ids of the tasks and queue entries they touched."""
        touched: set[str] = set()
        for e in events:
            if e.seq <= self.seq:
                continue  # a read raced another: already folded
            for table, key in apply(self.p, e):
                if table in ("tasks", "queue"):
                    touched.add(key)
                elif table == "attempts":
                    touched.add(key[0])
            if e.type == "hook.endpoint_disabled":
                self.hooks_disabled[str(e.data.get("endpoint"))] = str(e.data.get("reason"))
            elif e.type == "hook.endpoint_enabled":
                self.hooks_disabled.pop(str(e.data.get("endpoint")), None)
            if e.type in TRANSCRIPT_TYPES and e.task_id:
                self.transcripts.setdefault(e.task_id, deque(maxlen=TRANSCRIPT_KEEP)).append(e)
                touched.add(e.task_id)
            self.seq = e.seq
        return touched

    def attempts_of(self, task_id: str) -> list[dict[str, Any]]:
        return sorted((a for (t, _), a in self.p.attempts.items() if t == task_id),
                      key=lambda a: a["n"])

    def transcript(self, task_id: str, attempt: int) -> list[Event]:
        """The agent's messages and tool calls for one attempt, when its adapter writes them."""
        return [e for e in self.transcripts.get(task_id, ())
                if e.data.get("n", attempt) == attempt]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
