"""Which entries a failing check's output names (a hint the planner tests first)."""

from __future__ import annotations

import pytest

from wf.merge_queue.activities import read_log
from wf.merge_queue.blame import blamed, named_paths, subject_of

TRACEBACK = """\
$ python -m pytest -q
F.
FAILED tests/test_parser.py::test_round_trip - AssertionError
Traceback (most recent call last):
  File "/tmp/wt/.wf-mq-0/src/lib/lexer.py", line 12, in lex
    raise ValueError("bad token")
"""


def test_a_path_counts_whole_as_written_or_as_the_end_of_a_longer_one():
    named = named_paths(TRACEBACK)
    assert {"src/lib/lexer.py", "lib/lexer.py", "tests/test_parser.py"} <= named
    assert "lexer.p" not in named and "src/lib/lexer" not in named


@pytest.mark.parametrize("changed, named", [
    ("src/lib/lexer.py", True),           # a traceback frame
    ("lib/lexer.py", True),               # the end of the frame's path
    ("other/lib/lexer.py", False),        # a different file with the same end
    ("src/lib/lexer.pyc", False),
    ("src/parser.py", True),              # the module the failing test is named after
    ("tests/test_parser.py", True),       # the failing test itself
    ("src/printer.py", False),
])
def test_an_entry_is_named_by_its_own_changed_files(changed, named):
    assert blamed(TRACEBACK, [("a", {changed}), ("b", {"docs/x.md"})]) == (["a"] if named else [])


@pytest.mark.parametrize("path, stem", [
    ("tests/test_m09.py", "m09"), ("pkg/m09_test.go", "m09"), ("web/m09.test.ts", "m09"),
    ("web/m09.spec.js", "m09"), ("src/FooTest.java", "Foo"), ("FooTests.cs", "Foo"),
    ("pkg/m09.py", None), ("test.py", None), ("conftest.py", None), ("latest_news.py", None),
])
def test_test_files_are_recognised_by_the_usual_naming_conventions(path, stem):
    assert subject_of(path) == stem


def test_paths_a_passing_check_names_too_say_nothing():
    log = "configfile: pyproject.toml\nFAILED tests/test_parser.py::test_x\n"
    quiet = "configfile: pyproject.toml\n1 passed\n"
    changes = [("bump", {"pyproject.toml"}), ("parser", {"src/parser.py"}), ("c", {"c.py"})]
    assert blamed(log, changes, quiet) == ["parser"]
    assert blamed(log, changes) == ["bump", "parser"]  # without a passing log to compare


def test_a_verbose_runner_names_every_test_file_yet_the_failing_one_still_counts():
    quiet = "tests/test_parser.py::test_x PASSED\ntests/test_printer.py::test_y PASSED\n"
    log = "tests/test_parser.py::test_x FAILED\ntests/test_printer.py::test_y PASSED\n"
    changes = [("parser", {"src/parser.py"}), ("printer", {"src/printer.py"}), ("c", {"c.py"})]
    assert blamed(log, changes, quiet) == ["parser"]


def test_naming_every_entry_tells_them_apart_no_better_than_naming_none():
    changes = [("a", {"setup.cfg"}), ("b", {"setup.cfg", "x.py"})]
    assert blamed("error in setup.cfg", changes) == []
    assert blamed("error in setup.cfg", changes[:1]) == ["a"]  # a batch of one


def test_a_log_without_paths_names_no_one():
    assert blamed("FLAKE tree=abc run=0\nexit 1\n", [("a", {"pkg/a.py"})]) == []


def test_only_the_end_of_a_long_log_is_read(tmp_path):
    log = tmp_path / "check.log"
    log.write_text("early/file.py\n" + "." * (2 << 20) + "\nlate/file.py\n")
    text = read_log(log)
    assert "late/file.py" in text and "early/file.py" not in text
    assert read_log(tmp_path / "missing.log") == "" and read_log(None) == ""
