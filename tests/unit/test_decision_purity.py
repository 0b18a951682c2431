"""A decision never does I/O: the decision modules import nothing that could.

Both engines interpret the same decisions; a Temporal workflow may only call deterministic code
that touches neither files, processes, the network, the clock nor the global random source.
This reads the decision modules' source (and every wf module they import, transitively) and
fails on an import of anything that does I/O. Imports under ``if TYPE_CHECKING:`` are for the
type checker only and are skipped.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

DECISIONS = [
    "wf.engine.decide",
    "wf.engine.schedule",
    "wf.engine.attempt_plan",
    "wf.engine.signal_rules",
    "wf.engine.budget",
    "wf.engine.budget_plan",
    "wf.merge_queue.decide",
    "wf.merge_queue.forge_decide",
    "wf.merge_queue.planner",
    "wf.merge_queue.blame",
    "wf.merge_queue.policy",
    "wf.store.projections",
    "wf.hooks.decide",
    "wf.hooks.events",
    "wf.hooks.state",
    "wf.pool.rules",
]

# Modules (and their submodules) that do I/O, tell the time, or draw from the global random.
# "urllib.request", not "urllib": urllib.parse only parses (a forge's remote URL).
FORBIDDEN = {
    "anyio", "asyncio", "sqlite3", "sqlite_utils", "subprocess", "pygit2", "git", "os",
    "pathlib", "shutil", "tempfile", "time", "socket", "select", "signal", "threading",
    "random", "fcntl", "io", "urllib.request", "http", "httpx", "requests", "github", "gitlab",
    "temporalio", "textual", "rich",
}


def forbidden(name: str) -> bool:
    """Whether ``name`` is a forbidden module or one of its submodules."""
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _imports(module: str) -> set[str]:
    """The modules ``module`` imports at run time (not under ``if TYPE_CHECKING:``)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    tree = ast.parse(Path(spec.origin).read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.add(child.module)
                if child.module == "wf":  # `from wf import gitx` imports the module wf.gitx
                    found.update(f"wf.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def _closure(module: str) -> dict[str, str]:
    """Every module imported from ``module`` through wf's own modules: name -> who imports it."""
    seen: dict[str, str] = {}
    todo = [module]
    done: set[str] = set()
    while todo:
        current = todo.pop()
        if current in done:
            continue
        done.add(current)
        for name in _imports(current):
            seen.setdefault(name, current)
            if name.startswith("wf.") or name == "wf":
                todo.append(name)
    return seen


@pytest.mark.parametrize("module", DECISIONS)
def test_a_decision_module_imports_nothing_that_does_io(module: str) -> None:
    bad = {name: via for name, via in _closure(module).items() if forbidden(name)}
    assert bad == {}, f"{module} reaches I/O: " + ", ".join(
        f"{name} (imported by {via})" for name, via in sorted(bad.items()))


def test_the_check_catches_an_io_import() -> None:
    """The test itself can fail: the activities module is not pure, and it says so."""
    bad = {name for name in _closure("wf.engine.activities") if forbidden(name)}
    assert {"subprocess", "os"} <= bad
