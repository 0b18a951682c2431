"""Which entries a failing check points at: a hint for the planner, never a verdict.

A failing check's output usually names files: a traceback's frames, a failing test's path, a
compiler's or linter's ``path:line``. An entry of the failing candidate is *named* when a file
its merge brought (the diff from the prefix before it to the prefix with it)

* appears in the output as a whole path: as written, or as the end of a longer one
  (``/tmp/x/pkg/m07.py`` names ``pkg/m07.py``; ``pkg/m07.pyc`` and ``lib/pkg/m07.py`` do not);
* or is the module a named test file is named after, by the usual conventions: ``test_m07.py``,
  ``m07_test.go``, ``m07.test.ts``, ``m07.spec.js``, ``M07Test.java`` all test ``m07``. A bad
  change usually fails an assertion in its module's test, and the traceback then shows the test
  file only.

Two filters keep the hint honest:

* a line that the last *passing* check's output holds too (``configfile: pyproject.toml``, the
  command line, a test file whose tests all passed both times) says nothing about this failure
  and is ignored; lines, not paths, so that ``tests/test_x.py::t FAILED`` still counts where
  the passing run printed ``tests/test_x.py::t PASSED``;
* when every entry of a candidate of several is named, the output does not tell them apart, and
  none is.

The planner tests a named entry first (``Q[:b]`` and ``Q[:b+1]`` in one round); it is evicted,
like any culprit, only when those results convict it. See docs/merge-queue.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

LOG_TAIL = 1 << 20  # only the last MiB of a log is read: failures are reported at the end
_TOKEN = re.compile(r"[\w.+@~/-]+")
# test_x, tests_x, x_test, x_tests, x_spec, x.test, x.spec, XTest, XTests: x is the subject
_TEST_NAME = re.compile(r"tests?_(\w+)|(\w+?)_(?:test|tests|spec)|(.+?)\.(?:test|spec)"
                        r"|([A-Z]\w*?)Tests?")


def named_paths(text: str) -> set[str]:
    """Every path-like token of ``text`` and each of its ends after a ``/``."""
    out: set[str] = set()
    for token in _TOKEN.findall(text):
        token = token.rstrip(".")  # a sentence's full stop
        if "." not in token and "/" not in token:
            continue  # a word, not a file
        out.add(token)
        start = token.find("/")
        while start != -1:
            out.add(token[start + 1:])
            start = token.find("/", start + 1)
    return out


def stem(path: str) -> str:
    """The file name without its directory and last extension."""
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


def subject_of(path: str) -> str | None:
    """The stem of the module a test file is named after, or None for other files."""
    match = _TEST_NAME.fullmatch(stem(path))
    return next((g for g in match.groups() if g), None) if match else None


def blamed(log: str, changes: Sequence[tuple[str, Iterable[str]]], quiet: str = "") -> list[str]:
    """The ids of the entries, given as ``(id, paths changed)`` in queue order, that the
    failing ``log`` names; ``quiet`` is a passing check's output, whose lines do not count."""
    seen = {line.strip() for line in quiet.splitlines()}
    named = named_paths("\n".join(line for line in log.splitlines() if line.strip() not in seen))
    tested = {s for path in named if (s := subject_of(path))}
    hit = [entry for entry, paths in changes
           if any(path in named or stem(path) in tested for path in paths)]
    if len(changes) > 1 and len(hit) == len(changes):
        return []
    return hit
