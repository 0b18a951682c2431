"""The merge-queue pane: entries in order, the batch under test, checks, landings, evictions."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from wf.tui.cells import entry_state_text


class QueuePane(Static):
    def show(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            self.update(Text("the merge queue is empty", style="dim"))
            return
        testing = [e["task_id"] for e in entries if (e.get("last_check") or "")
                   .startswith("testing") and e["state"] in ("queued", "pending")]
        head = Text("under test: ", style="bold")
        head.append(", ".join(testing) if testing else "nothing", style="cyan" if testing
                    else "dim")
        table = Table(box=None, pad_edge=False, expand=True, header_style="bold")
        for col in ("entry", "state", "check", "why"):
            table.add_column(col, no_wrap=col != "why", overflow="fold" if col == "why"
                             else "ellipsis")
        for e in entries:
            why = f"{e['reason_kind']}: {e['reason']}" if e.get("reason_kind") else ""
            if e["state"] == "landed" and e.get("landed_commit"):
                why = f"at {e['landed_commit'][:10]}"
            table.add_row(e["task_id"], entry_state_text(e["state"]), e.get("last_check") or "–",
                          Text(why, style="red" if e["state"] == "evicted" else "dim"))
        self.update(Group(head, table))
