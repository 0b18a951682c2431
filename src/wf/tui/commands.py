"""The dashboard's commands: the keys that act on a task, and the command palette's entries.

Each is one ``wf.api`` call in a thread worker, the same call the matching CLI command makes;
the result, or the error, comes back as a notification, and the engine's answer to a signal
arrives later through the log (``Dashboard._news``).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen

from wf import api
from wf.errors import WfError
from wf.model import Event, SignalKind
from wf.tui.confirm import ConfirmScreen
from wf.tui.tasks_table import TasksTable


class TaskCommands:
    """Mixed into the Dashboard app, which provides ``repo``, ``sent`` (signal seq -> what
    was sent, for the engine's reply) and ``deliver``."""

    repo: api.Repo
    sent: dict[int, tuple[str, str]]

    def _target(self) -> str | None:
        tid = self.query_one(TasksTable).selected
        if tid is None:
            self.notify("no task selected", severity="warning")
        return tid

    def action_retry(self) -> None:
        if tid := self._target():
            self.send(SignalKind.RETRY, tid)

    def action_cancel(self) -> None:
        tid = self._target()
        if tid is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(SignalKind.CANCEL, tid)

        self.push_screen(ConfirmScreen(f"Cancel {tid}? Its agent is stopped and it is not "
                                       "retried."), answered)

    def action_approve(self) -> None:
        if tid := self._target():
            self.send(SignalKind.APPROVE, tid)

    def action_reject(self) -> None:
        if tid := self._target():
            self.send(SignalKind.REJECT, tid, reason="rejected in wf dash")

    def action_enqueue(self) -> None:
        if tid := self._target():
            self.send(SignalKind.ENQUEUE, tid)

    @work(thread=True, group="signal")
    def send(self, kind: SignalKind, task_id: str, **data: str) -> None:
        try:
            event, active = api.send_signal(self.repo, kind, task_id, **data)
        except WfError as exc:
            self.deliver(self.notify, exc.message, severity="error")
            return
        self.deliver(self.signal_sent, event, kind, task_id, active)

    def signal_sent(self, event: Event, kind: SignalKind, task_id: str, active: bool) -> None:
        self.sent[event.seq] = (str(kind), task_id)
        wait = "" if active else "; no engine is running: `wf resume` acts on it"
        self.notify(f"{kind} {task_id} sent{wait}", timeout=3 if active else 8)

    def action_open_pr(self) -> None:
        if tid := self._target():
            self.open_pr(tid)

    @work(thread=True, group="pr")
    def open_pr(self, task_id: str) -> None:
        try:
            pr = api.open_pr(self.repo, task_id)
        except WfError as exc:
            self.deliver(self.notify, exc.message, title="pull request",
                                  severity="error", timeout=10)
            return
        verb = "opened" if pr.get("created") else "updated"
        self.deliver(self.notify, f"{task_id}: PR #{pr.get('number')} {verb}: "
                              f"{pr.get('url')}", title="pull request", timeout=10)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.show and binding.action != "quit":
                yield SystemCommand(binding.description, _HELP[binding.action],
                                    lambda action=binding.action: self.run_action(action))


_HELP = {
    "retry": "Run the selected task again (wf retry)",
    "cancel": "Stop the selected task, after a confirmation (wf cancel)",
    "approve": "Let the selected queue entry go on (wf approve)",
    "reject": "Send the selected queue entry back (wf reject)",
    "enqueue": "Put the selected task's branch in the merge queue (wf queue add)",
    "open_pr": "Open or update the selected task's pull request",
    "show_tab('diff')": "Show the selected task's diff against its base",
    "show_tab('log')": "Show the selected task's output",
    "filter": "Show only tasks matching words or a state",
}
