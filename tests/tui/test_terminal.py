"""`wf dash` in a real terminal: tmux runs it against a live `wf run` of slow script agents;
the test reads the screen with `capture-pane` and types with `send-keys`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dashrun import tasks_file
from helpers import commit_files, git
from runwf import task_states, wait_until, wf, wf_bg

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None,
                                                   reason="needs tmux (.ci/run installs it)")]


class Terminal:
    """One tmux server of its own (``-L``), one window of a fixed size."""

    def __init__(self, cwd: Path, command: str, env: dict[str, str] | None = None,
                 size: tuple[int, int] = (120, 32)) -> None:
        self.socket = f"wf-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        # The shell stays after the command, so its exit code can be read off the screen.
        # COLUMNS/LINES from the test's environment would override the window's size.
        script = f"env -u COLUMNS -u LINES {exports} {command}; echo EXITED $?; sleep 600"
        self.tmux("new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-c", str(cwd),
                  script)
        # With no client attached, tmux sizes the window from default-size unless told.
        self.tmux("resize-window", "-x", str(size[0]), "-y", str(size[1]))

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, check=True).stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        try:
            return wait_until(lambda: re.search(pattern, self.screen(), re.M) and self.screen(),
                              timeout, f"{pattern!r} on the screen")
        except AssertionError:
            raise AssertionError(f"{pattern!r} not on the screen:\n{self.screen()}") from None

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


WF = f"{sys.executable} -m wf"
GREYS = {0, 7, 8, 15, 16, 231, *range(232, 256)}  # of the 256-colour palette tmux reports


def assert_greys_only(screen: str) -> None:
    """Every colour on the screen is a grey, or there would be a hue NO_COLOR forbids."""
    palette = [int(n) for n in re.findall(r"[34]8;5;(\d+)", screen)]
    rgb = re.findall(r"[34]8;2;(\d+);(\d+);(\d+)", screen)
    assert palette or rgb, "no colour codes at all: the capture did not include escapes"
    assert set(palette) <= GREYS and all(r == g == b for r, g, b in rgb), screen


def test_retry_cancel_and_quit_in_a_real_terminal(repo):
    run = wf_bg(repo, "run", str(tasks_file(repo, {"s1": "slow 120", "s2": "slow 120"})))
    term = Terminal(repo, f"{WF} dash")
    try:
        wait_until(lambda: task_states(repo) == {"s1": "running", "s2": "running"}, 30,
                   "both tasks running")
        term.wait_for(r"^ s1 .*▶ running")
        term.wait_for(r"^ s2 .*▶ running")
        term.wait_for(r"● engine running")
        term.wait_for(r"working \d")  # the selected task's output streams in

        # The first row is selected: s1 or s2, the two started at once and either may be first.
        term.keys("c")
        first = re.search(r"Cancel (s[12])\?", term.wait_for(r"Cancel s[12]\?")).group(1)
        term.keys("y")
        wait_until(lambda: task_states(repo)[first] == "cancelled", 30, f"{first} cancelled")
        term.wait_for(rf"^ {first} .*■ cancelled")

        term.keys("r")
        wait_until(lambda: task_states(repo)[first] == "running", 30, f"{first} running again")
        term.wait_for(rf"^ {first} .*▶ running +2/")

        term.keys("q")
        term.wait_for(r"^EXITED 0")
        assert run.poll() is None  # quitting the dashboard never stops the run
        assert task_states(repo) == {"s1": "running", "s2": "running"}
    finally:
        term.close()
        for tid in ("s1", "s2"):
            wf(repo, "cancel", tid)
        run.communicate(timeout=60)


def test_run_dash_shows_its_run_and_no_color_means_no_colour(repo):
    path = tasks_file(repo, {"quick": "slow 2"})
    term = Terminal(repo, f"{WF} run --dash {path}", env={"NO_COLOR": "1"})
    try:
        term.wait_for(r"^ quick .*▶ running")
        term.wait_for(r"^ quick .*✔ done", timeout=60)
        term.wait_for(r"wf run finished with exit code 0")
        assert_greys_only(term.screen(escapes=True))
        term.keys("q")
        term.wait_for(r"^EXITED 0")
    finally:
        term.close()
    assert task_states(repo) == {"quick": "done"}


def test_a_run_of_the_queue_alone_shows_the_queue_in_a_terminal(repo, tmp_path):
    (tmp_path / "check.py").write_text(
        "import pathlib, sys\nsys.exit(1 if pathlib.Path('bad.txt').exists() else 0)\n")
    check = f'["{sys.executable}", "{tmp_path / "check.py"}"]'
    commit_files(repo, {"wf.toml": f"[merge]\ncheck = {check}\n"}, "queue config")
    for name in ("good", "bad"):
        git(repo, "checkout", "-qb", name)
        commit_files(repo, {f"{name}.txt": name}, name)
        git(repo, "checkout", "-q", "-")
        assert wf(repo, "queue", "add", "--branch", name, "--id", name).returncode == 0
    term = Terminal(repo, f"{WF} resume")
    try:
        term.wait_for(r"^merge queue  ⬆ landed 1  ✘ evicted 1$", timeout=60)
        screen = term.wait_for(r"^EXITED 0")
    finally:
        term.close()
    assert "task" not in screen.split("merge queue")[0]  # no empty table of tasks above it
