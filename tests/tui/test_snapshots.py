"""SVG snapshots of the dashboard in four states. The logs are real SQLite event logs written
through the store with fixed timestamps, and the app's clock is frozen, so every figure on the
screen (elapsed, retry in, line counts) is the same on every run.

Update after an intended change: ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dashrun import until
from helpers import commit_files, git

from wf import api
from wf.model import NewEvent, task_stream
from wf.store import SqliteEventStore
from wf.tui.app import Dashboard
from wf.tui.tasks_table import TasksTable

T0 = 1_800_000_000.0
NOW = T0 + 95.0
RETRY = {"maximum_attempts": 3}


class Log:
    """Writes a run's events as the engine would, at chosen times."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.store = SqliteEventStore(repo / ".git" / "wf" / "wf.db")
        self.base = git(repo, "rev-parse", "HEAD")

    def at(self, t: float, task: str, type_: str, *, stream: str | None = None,
           **data) -> None:
        stream = stream or (task_stream(task) if task else "queue")
        self.store.append([NewEvent(stream, type_, data)], ts=T0 + t)

    def submit(self, task: str, agent: str = "claude") -> None:
        # As `wf run` submits a task of agent claude: read by the claude adapter.
        self.at(0, task, "task.submitted", spec={"id": task, "prompt": f"work on {task}",
                                                 "agent": agent, "adapter": agent,
                                                 "base": "main", "retry": RETRY})

    def start(self, t: float, task: str, n: int, *output: str, change: bool = True) -> None:
        if n == 1:
            if change:  # a real branch, so the +/- column counts real lines
                git(self.repo, "checkout", "-q", "-b", f"wf/{task}", "main")
                commit_files(self.repo, {f"src/{task}.py": f"def {task}():\n    return 1\n"})
                git(self.repo, "checkout", "-q", "main")
            self.at(t, task, "task.worktree_ready", branch=f"wf/{task}", base_commit=self.base,
                    path=str(self.repo.parent / "wt" / task))
        self.at(t, task, "attempt.started", n=n)
        log = self.repo / ".git" / "wf" / "logs" / task / f"{n}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"{line}\n" for line in output))

    def finish(self, t: float, task: str, n: int, *, error: str | None = None,
               kind: str = "agent_error") -> None:
        if error is None:
            self.at(t, task, "attempt.finished", n=n, state="succeeded", exit_code=0)
            self.at(t, task, "task.succeeded", commit="c0ffee")
        else:
            self.at(t, task, "attempt.finished", n=n, state="failed", exit_code=1,
                    failure_kind=kind, error=error)

    def close(self) -> None:
        self.store.close()


def running(log: Log) -> None:
    for task in ("parser", "lexer", "docs", "cli"):
        log.submit(task, agent="codex" if task == "docs" else "claude")
    log.start(5, "parser", 1, "reading src/parser.py", "writing tests for the parser",
              "running pytest: 12 passed")
    log.start(20, "lexer", 1, "tokenizing fixtures", "fixing an off-by-one in the lexer")
    log.start(30, "cli", 1, "adding --verbose")
    log.finish(70, "cli", 1)


def retrying(log: Log) -> None:
    running(log)
    log.finish(80, "lexer", 1, error="exit 75: rate limited", kind="transient")
    log.at(80, "lexer", "task.retry_scheduled", n=1, kind="transient", delay=27.0,
           error="exit 75: rate limited")


def failed(log: Log) -> None:
    running(log)
    log.finish(50, "lexer", 1, error="exit 75: rate limited", kind="transient")
    log.at(50, "lexer", "task.retry_scheduled", n=1, kind="transient", delay=10.0,
           error="exit 75: rate limited")
    log.start(60, "lexer", 2, "tokenizing fixtures", "FAILED test_lexer.py::test_unicode")
    log.finish(75, "lexer", 2, error="exit 3: tests fail: test_lexer.py::test_unicode")
    log.at(75, "lexer", "task.failed", kind="agent_error", why="retries exhausted",
           error="exit 3: tests fail: test_lexer.py::test_unicode")


def budget(log: Log) -> None:
    """A budget paused parser and holds lexer; docs (Codex: usage only at its end) runs
    without live figures; rate limits lowered claude's parallelism from 4 to 2."""
    for task in ("parser", "lexer", "docs"):
        log.submit(task, agent="codex" if task == "docs" else "claude")
    log.start(5, "parser", 1, "reading src/parser.py", "writing tests for the parser")
    log.at(40, "parser", "agent.usage", n=1, input_tokens=180_000, output_tokens=20_500,
           cost_usd=None)
    exceeded = {"scope": "agent:claude", "limit": "max_tokens", "used": 200_500.0,
                "allowed": 200_000.0, "message": "agent:claude used 200500 tokens of its "
                "max_tokens 200000 tokens"}
    log.at(41, "parser", "budget.exceeded", n=1, action="pause", **exceeded)
    log.at(41, "parser", "task.paused", n=1, pid=4242)
    log.at(42, "lexer", "budget.exceeded", n=0, action="pause", **exceeded)
    log.start(50, "docs", 1, "updating the README")
    log.at(60, "", "agent.limit_changed", stream="agent:claude", agent="claude", limit=2,
           max_parallel=4, not_before=T0 + 100.0, successes=0, lowered_at=T0 + 60.0,
           reason="rate limited: 4 -> 2")


def queue_busy(log: Log) -> None:
    for task in ("api", "auth", "cache", "db", "ui"):
        log.submit(task)
        log.start(1, task, 1, f"implementing {task}")
        log.finish(40, task, 1)
    for task in ("api", "auth", "cache", "db", "ui"):
        log.at(50, task, "queue.entered", branch=f"wf/{task}", head="c0ffee")
        log.at(51, task, "queue.admitted", head="c0ffee")
    log.at(52, "", "queue.check_started", sizes=[1], batches=[["api"]])
    log.at(60, "", "queue.check_finished", tree="t1", result="pass", size=1, entries=["api"])
    log.at(61, "api", "queue.landed", commit="5eed1e55f00d")
    log.at(62, "", "queue.check_started", sizes=[2], batches=[["auth", "cache"]])
    log.at(63, "db", "queue.evicted", kind="check_failed", detail="pytest: 2 failed")
    log.at(64, "ui", "queue.needs_approval", kind="approval_paths",
           detail=".github/workflows/ci.yml")


def settled(app: Dashboard) -> bool:
    """Every row drawn and every line count and last line read: nothing left to change."""
    tasks = app.feed.p.tasks
    return (app.loaded and not app._sampling
            and len(app.query_one(TasksTable).shown) == len(tasks)
            and all(t in app.counted_version for t, r in tasks.items() if r["base_commit"])
            and all(t in app.last_lines for t, r in tasks.items() if r["attempts"]))


@pytest.mark.parametrize(("state", "select", "tab", "size"), [
    ("running", "parser", "log", (120, 32)),
    ("retrying", "lexer", "log", (120, 32)),
    ("failed", "lexer", "attempts", (120, 32)),
    ("queue_busy", "ui", "attempts", (120, 32)),
    ("running", "parser", "diff", (80, 24)),
    ("budget", "parser", "log", (120, 32)),
])
def test_snapshot(repo, snap_compare, state, select, tab, size):
    log = Log(repo)
    globals()[state](log)
    log.close()
    app = Dashboard(api.open_repo(repo), clock=lambda: NOW)

    async def ready(pilot) -> None:
        await until(pilot, lambda: settled(app), "the dashboard to settle")
        table = app.query_one(TasksTable)
        table.move_cursor(row=table.get_row_index(select))
        app.action_show_tab(tab)
        await until(pilot, lambda: app.selected == select, "the selection")
        if tab == "diff":
            body = app.query_one("#diff-body")
            await until(pilot, lambda: "def parser" in getattr(body.content, "code", ""),
                        "the diff")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ready)
