"""The tasks table: one row per task, drawn line by line.

Textual's DataTable re-renders every visible cell whenever any cell changes (its caches are
keyed by a table-wide update count), which at 200 events a second costs a frame of ~100 ms on
a slow machine. This table caches each row's rendered line and redraws only the rows whose
cells changed, so a key press draws in one cheap frame however busy the log is.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wf.tui.cells import COLUMNS

Cells = tuple[Text | str, ...]
GAP = 2  # spaces between columns


class TasksTable(ScrollView, can_focus=True):
    """Rows keyed by task id, a header line that stays, a row cursor. Columns only widen, so
    a row's line changes only when its own cells do."""

    COMPONENT_CLASSES = {"tasks-table--header", "tasks-table--cursor"}
    DEFAULT_CSS = """
    TasksTable > .tasks-table--header { text-style: bold; background: $panel; }
    TasksTable > .tasks-table--cursor { background: $block-cursor-blurred-background; }
    TasksTable:focus > .tasks-table--cursor { background: $block-cursor-background;
                                              color: $block-cursor-foreground; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1000000)", show=False),
        Binding("end", "move(1000000)", show=False),
        Binding("enter", "choose", "Detail", show=False),
    ]

    class Highlighted(Message):
        """The cursor is on another task."""

        def __init__(self, task_id: str) -> None:
            super().__init__()
            self.task_id = task_id

    class Chosen(Message):
        """Enter on a task: its detail wants the focus."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.shown: dict[str, Cells] = {}
        self.order: list[str] = []
        self.index: dict[str, int] = {}
        self.widths = [cell_len(label) for _, label in COLUMNS]
        self.cursor_row = 0
        self._lines: dict[str, tuple[int, bool, Strip]] = {}  # task -> (width, cursor, line)

    # -- contents ---------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.order)

    @property
    def selected(self) -> str | None:
        return self.order[self.cursor_row] if self.cursor_row < len(self.order) else None

    def get_row_index(self, task_id: str) -> int:
        return self.index[task_id]

    def put(self, task_id: str, cells: Cells) -> None:
        """Add a row, or update one; only a changed row is drawn again."""
        if self.shown.get(task_id) == cells:
            return
        self.shown[task_id] = cells
        self._lines.pop(task_id, None)
        new = task_id not in self.index
        if new:
            self.index[task_id] = len(self.order)
            self.order.append(task_id)
        if self._widen(cells):
            self._lines.clear()
            self.refresh()
        elif new:
            self._resize()
        else:
            self.refresh_line(self.index[task_id] + 1)
        if new and len(self.order) == 1:
            self.post_message(self.Highlighted(task_id))

    def replace_all(self, rows: Iterable[tuple[str, Cells]], keep: str | None) -> None:
        """Show exactly ``rows`` (a new filter), keeping the cursor on ``keep`` if shown."""
        self.shown = dict(rows)
        self.order = list(self.shown)
        self.index = {t: i for i, t in enumerate(self.order)}
        self._lines.clear()
        for cells in self.shown.values():
            self._widen(cells)
        self._resize()
        self.move_cursor(row=self.index.get(keep, 0) if keep else 0)

    def _widen(self, cells: Cells) -> bool:
        grew = False
        for i, cell in enumerate(cells[:-1]):  # the last column takes what is left
            width = cell_len(str(cell))
            if width > self.widths[i]:
                self.widths[i], grew = width, True
        return grew

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.order) + 1)
        self.refresh()
        self.call_after_refresh(self._scroll_to_cursor)

    def on_resize(self) -> None:
        self.call_after_refresh(self._scroll_to_cursor)

    def _scroll_to_cursor(self) -> None:
        """Scroll the least that puts the cursor's row on the screen. Also after a layout
        change: a scroll asked for before it may have been cut to the old size."""
        body = self.scrollable_content_region.height - 1  # rows under the header
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif body > 0 and self.cursor_row >= top + body:
            self.scroll_to(y=self.cursor_row - body + 1, animate=False, immediate=True)

    # -- the cursor -------------------------------------------------------------------------
    def move_cursor(self, *, row: int) -> None:
        before = self.selected
        old = self.cursor_row
        self.cursor_row = max(0, min(row, len(self.order) - 1))
        self.refresh_line(old + 1)
        self.refresh_line(self.cursor_row + 1)
        # Rows counted in the region a scrollbar leaves, not the widget's whole height.
        self._scroll_to_cursor()
        if self.selected is not None and self.selected != before:
            self.post_message(self.Highlighted(self.selected))

    def action_move(self, delta: int) -> None:
        self.move_cursor(row=self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(row=self.cursor_row + direction * max(1, self.size.height - 2))

    def action_choose(self) -> None:
        self.post_message(self.Chosen())

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(row=self.scroll_offset.y + event.y - 1)

    # -- drawing ----------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = tuple(label for _, label in COLUMNS)
            style = self.get_component_rich_style("tasks-table--header")
            return self._line(header, width, style)
        row = self.scroll_offset.y + y - 1
        if row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        tid = self.order[row]
        cursor = row == self.cursor_row
        cached = self._lines.get(tid)
        if cached is None or cached[:2] != (width, cursor):
            style = (self.get_component_rich_style("tasks-table--cursor") if cursor
                     else self.rich_style)
            cached = (width, cursor, self._line(self.shown[tid], width, style))
            self._lines[tid] = cached
        return cached[2]

    def _line(self, cells: Cells, width: int, style: Style) -> Strip:
        text = Text(" ", no_wrap=True, overflow="ellipsis", end="")
        for i, cell in enumerate(cells):
            piece = cell if isinstance(cell, Text) else Text(cell)
            if i < len(cells) - 1:
                piece = piece.copy()
                piece.pad_right(self.widths[i] - piece.cell_len + GAP)
            text.append_text(piece)
        text.truncate(width, overflow="ellipsis", pad=True)
        segments = [Segment(s.text, style + s.style if s.style else style)
                    for s in text.render(self.app.console)]
        return Strip(segments, width).crop(0, width)
