"""`wf events` prints every event as a written line, never a bare type name."""

from __future__ import annotations

import re
from pathlib import Path

from wf.cli.output import event_text
from wf.model import Event

SRC = Path(__file__).parents[2] / "src" / "wf"
TYPE = re.compile(r'"((?:task|attempt|queue|pr|agent|signal|run)\.[a-z_]+)"')


def appended_types() -> set[str]:
    return {m for path in SRC.rglob("*.py") for m in TYPE.findall(path.read_text())}


def test_every_event_type_wf_appends_has_a_line_of_its_own():
    types = appended_types()
    assert {"task.submitted", "queue.check_started", "task.forgotten"} <= types
    written = (SRC / "cli" / "output.py").read_text()
    assert not [t for t in sorted(types) if f'"{t}": lambda' not in written]


def test_an_unknown_type_or_odd_data_is_one_line_with_its_data():
    line = event_text(Event(1, "task:t", 1, "plugin.thing", 0.0, {"a": "x\ny", "b": 2}, None))
    assert line.endswith("t: plugin.thing a=x y b=2")
    odd = event_text(Event(2, "task:t", 1, "attempt.started", 0.0, {}, None))  # no "n"
    assert "attempt.started" in odd and "\n" not in odd
