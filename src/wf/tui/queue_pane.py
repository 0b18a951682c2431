"""The merge-queue pane: entries in order, the batch under test, checks, landings, evictions.

One line per entry and, under it, why it was evicted or is held: a narrow pane still shows
every reason whole, which columns would cut."""

from __future__ import annotations

from typing import Any

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
        out = Text("under test: ", style="bold")
        out.append(", ".join(testing) if testing else "nothing",
                   style="cyan" if testing else "dim")
        width = max(len(e["task_id"]) for e in entries)
        for e in entries:
            out.append(f"\n{e['task_id']:<{width}}  ")
            out.append_text(entry_state_text(e["state"]))
            if e.get("last_check"):
                out.append(f"  {e['last_check']}", style="dim")
            why = f"{e['reason_kind']}: {e['reason']}" if e.get("reason_kind") else ""
            if e["state"] == "landed" and e.get("landed_commit"):
                why = f"landed at {e['landed_commit'][:10]}"
            if why:
                out.append(f"\n{'':<{width}}  ↳ {why}",
                           style="red" if e["state"] == "evicted" else "dim")
            if e["state"] == "evicted" and e.get("check_log"):  # where the check's output is
                out.append(f"\n{'':<{width}}    log: {e['check_log']}", style="dim")
        self.update(out)
