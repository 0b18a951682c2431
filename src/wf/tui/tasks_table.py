"""The tasks table: one row per task, updated cell by cell as events arrive."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable

from wf.tui.cells import COLUMNS

Cells = tuple[Text | str, ...]


class TasksTable(DataTable):
    """Rows are keyed by task id. ``put`` adds or updates a row and touches only the cells
    whose text changed, so a stream of events redraws little."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.shown: dict[str, Cells] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def put(self, task_id: str, cells: Cells) -> None:
        old = self.shown.get(task_id)
        if old is None:
            self.add_row(*cells, key=task_id)
        else:
            for (key, _), before, after in zip(COLUMNS, old, cells, strict=True):
                if before != after:
                    self.update_cell(task_id, key, after, update_width=True)
        self.shown[task_id] = cells

    def replace_all(self, rows: Iterable[tuple[str, Cells]], keep: str | None) -> None:
        """Show exactly ``rows`` (a new filter), keeping the cursor on ``keep`` if shown."""
        self.clear()
        self.shown.clear()
        for task_id, cells in rows:
            self.add_row(*cells, key=task_id)
            self.shown[task_id] = cells
        if keep in self.shown:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value
