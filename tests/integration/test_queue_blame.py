"""The merge queue reading a failing check's output: the entries it names are tested first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import make_repo
from runwf import events, wf

# Prints "FAILED <path>" for every file saying BAD, the way a test runner names what failed.
# A file saying FLAKY fails the first check that sees it (without BAD), naming nothing.
CHECK_PY = """
import pathlib, sys
state = pathlib.Path(sys.argv[1])
files = sorted(p for p in pathlib.Path('.').rglob('*.txt') if '.git' not in p.parts)
bad = [p for p in files if 'BAD' in p.read_text()]
for p in bad:
    print(f"FAILED {p.as_posix()} - AssertionError")
if bad:
    sys.exit(1)
if any('FLAKY' in p.read_text() for p in files) and not (state / 'flaked').exists():
    (state / 'flaked').write_text('')
    sys.exit(1)
"""


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def make_queue(repo: Path, state: Path, kinds: list[str], merge: str = "") -> list[str]:
    state.mkdir()
    (state / "check.py").write_text(CHECK_PY)
    check = json.dumps([sys.executable, str(state / "check.py"), str(state)])
    (repo / "wf.toml").write_text(f"[merge]\ncheck = {check}\n{merge}\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "queue config")
    names = []
    for i, kind in enumerate(kinds):
        name = f"e{i:02d}"
        git(repo, "checkout", "-q", "-b", name, "main")
        (repo / "mods").mkdir(exist_ok=True)
        (repo / f"mods/{name}.txt").write_text(kind)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", name)
        git(repo, "checkout", "-q", "main")
        names.append(name)
    for name in names:
        assert wf(repo, "queue", "add", "--branch", name, "--id", name).returncode == 0
    return names


def run_queue(repo: Path) -> tuple[dict[str, dict], list[dict]]:
    assert wf(repo, "resume").returncode == 0
    entries = {e["task_id"]: e for e in json.loads(wf(repo, "queue", "--json").stdout)}
    return entries, events(repo, "queue.check_finished")


KINDS = ["ok"] * 5 + ["BAD"] + ["ok"] * 7 + ["BAD"] + ["ok"] * 6


def test_named_entries_are_convicted_in_one_round_each(repo, tmp_path):
    names = make_queue(repo, tmp_path / "state", KINDS)
    entries, checks = run_queue(repo)
    bad = {names[5], names[13]}
    assert {n for n, e in entries.items() if e["state"] == "evicted"} == bad
    assert all(entries[n]["state"] == "landed" for n in names if n not in bad)
    assert {entries[n]["reason_kind"] for n in bad} == {"check"}
    # the first failing check named both; the next round landed the five before the first
    # and convicted it: Q[:5] and Q[:6], nothing split
    first = checks[0]["data"] if checks[0]["data"]["size"] == 20 else checks[1]["data"]
    assert first["result"] == "fail" and set(first["blamed"]) == bad
    started = events(repo, "queue.check_started")
    assert started[1]["data"]["sizes"] == [5, 6]
    assert "its files in the log" in entries[names[13]]["last_check"]
    assert [n for n, e in entries.items() if e["suspect"]] == sorted(bad)  # in `wf queue --json`


def test_reading_the_output_saves_check_runs(repo, tmp_path):
    make_queue(repo, tmp_path / "state", KINDS)
    _entries, with_blame = run_queue(repo)
    other = make_repo(tmp_path / "other")
    make_queue(other, tmp_path / "state2", KINDS, merge="blame = false")
    entries, without = run_queue(other)
    assert sum(e["state"] == "evicted" for e in entries.values()) == 2  # the same outcome...
    assert not any(c["data"]["blamed"] for c in without)
    assert len(with_blame) < len(without)  # ...in fewer check runs


def test_a_wrongly_named_entry_is_cleared_by_its_own_checks_and_lands(repo, tmp_path):
    # the bad entry's output names a good entry's file too: the hint is wrong for that one
    names = make_queue(repo, tmp_path / "state", ["ok", "ok", "ok", "BAD", "ok", "ok"])
    (tmp_path / "state" / "check.py").write_text(
        CHECK_PY.replace("if bad:\n", "if bad:\n    print('see mods/e01.txt')\n"))
    entries, checks = run_queue(repo)
    assert {n: e["state"] for n, e in entries.items()} == {
        **dict.fromkeys(names, "landed"), names[3]: "evicted"}
    assert any(names[1] in c["data"]["blamed"] for c in checks)


def test_a_culprit_whose_failure_names_nothing_is_checked_again_first(repo, tmp_path):
    # failures of this check name files, so one that names none is suspicious: the entry
    # it points at gets a second check before it is evicted, and a flake is caught
    names = make_queue(repo, tmp_path / "state", ["BAD", "ok", "ok", "ok", "FLAKY", "ok"])
    entries, checks = run_queue(repo)
    assert {n: e["state"] for n, e in entries.items()} == {
        **dict.fromkeys(names, "landed"), names[0]: "evicted"}
    assert (tmp_path / "state" / "flaked").exists()  # the flake did strike
    rechecked = [c["data"] for c in checks if c["data"]["entries"][-1:] == [names[5]]
                 and c["data"]["without"] is None]
    assert [c["result"] for c in rechecked][-2:] == ["fail", "pass"]


def test_pytest_output_names_the_module_whose_test_failed(repo, tmp_path):
    # a real test runner: `pytest -q` names tests/test_calc.py, and the change is in calc.py
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    (repo / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    check = json.dumps([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    (repo / "wf.toml").write_text(f"[merge]\ncheck = {check}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "calc and its test")
    changes = {"docs": {"docs/a.md": "a\n"},
               "bad": {"calc.py": "def add(a, b):\n    return a - b\n"},
               "notes": {"notes.txt": "n\n"}, "more": {"docs/b.md": "b\n"}}
    for name, files in changes.items():
        git(repo, "checkout", "-q", "-b", name, "main")
        for path, text in files.items():
            (repo / path).parent.mkdir(exist_ok=True)
            (repo / path).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", name)
        git(repo, "checkout", "-q", "main")
        assert wf(repo, "queue", "add", "--branch", name, "--id", name).returncode == 0
    entries, checks = run_queue(repo)
    assert {n: e["state"] for n, e in entries.items()} == {
        "docs": "landed", "bad": "evicted", "notes": "landed", "more": "landed"}
    failing = [c["data"] for c in checks if c["data"]["result"] == "fail"]
    assert failing and all(c["blamed"] == ["bad"] for c in failing)
