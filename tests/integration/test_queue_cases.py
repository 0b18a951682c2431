"""Each planning and admission case of the merge queue, on plain branches and a real check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from runwf import events, pid_alive, wait_until, wf, wf_bg

from wf.merge_queue.checks import CheckSlots

# Fails when any file says BAD, or when a.py and b.py both exist (a semantic pair: each alone
# is fine, together they are not). Exits 75 when a file says INFRA.
CHECK_PY = """
import pathlib, sys
names = [p for p in pathlib.Path('.').rglob('*.txt') if '.git' not in p.parts]
text = ' '.join(p.read_text() for p in names)
if 'INFRA' in text:
    sys.exit(75)
if 'BAD' in text or (pathlib.Path('a.txt').exists() and pathlib.Path('b.txt').exists()
                     and 'pair' in text):
    sys.exit(1)
"""


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def setup(repo: Path, merge: str = "", policy: str = "") -> None:
    (repo.parent / "check.py").write_text(CHECK_PY)
    check = json.dumps([sys.executable, str(repo.parent / "check.py")])
    (repo / "wf.toml").write_text(f"[merge]\ncheck = {check}\n{merge}\n[policy]\n{policy}\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "queue config")


def branch(repo: Path, name: str, files: dict[str, str], base: str = "main") -> None:
    git(repo, "checkout", "-q", "-b", name, base)
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"{name}")
    git(repo, "checkout", "-q", "main")


def enqueue(repo: Path, *names: str) -> None:
    for name in names:
        proc = wf(repo, "queue", "add", "--branch", name, "--id", name)
        assert proc.returncode == 0, proc.stderr


def queue(repo):
    return {e["task_id"]: e for e in json.loads(wf(repo, "queue", "--json").stdout)}


def states(repo):
    return {k: v["state"] for k, v in queue(repo).items()}


def assert_target_green(repo: Path, before: str) -> None:
    """Every commit the target moved to has a tree that passed the check."""
    passed = {e["data"]["tree"].split("/")[0] for e in events(repo, "queue.check_finished")
              if e["data"]["result"] == "pass"}
    reflog = git(repo, "reflog", "--format=%H", "main").split()
    for commit in reflog[:reflog.index(before)]:
        assert git(repo, "rev-parse", f"{commit}^{{tree}}") in passed


@pytest.fixture
def q(repo):
    setup(repo)
    return repo


def test_two_culprits_are_found_and_the_rest_lands(q):
    before = git(q, "rev-parse", "main")
    for i, kind in enumerate(["ok", "BAD", "ok", "ok", "BAD", "ok"]):
        branch(q, f"e{i}", {f"f{i}.txt": kind})
    enqueue(q, *(f"e{i}" for i in range(6)))
    assert wf(q, "resume").returncode == 0
    assert states(q) == {"e0": "landed", "e1": "evicted", "e2": "landed", "e3": "landed",
                         "e4": "evicted", "e5": "landed"}
    assert {queue(q)[e]["reason_kind"] for e in ("e1", "e4")} == {"check"}
    assert_target_green(q, before)
    assert git(q, "status", "--porcelain") == ""


def test_a_conflict_with_the_target_is_refused_at_admission(q):
    branch(q, "late", {"README.md": "their readme\n"})
    (q / "README.md").write_text("our readme\n")
    git(q, "commit", "-qam", "target moves on")
    enqueue(q, "late")
    assert wf(q, "resume").returncode == 0
    entry = queue(q)["late"]
    assert (entry["state"], entry["reason_kind"]) == ("evicted", "conflict")
    assert "README.md" in entry["reason"]


def test_two_entries_that_conflict_with_each_other(q):
    branch(q, "first", {"same.txt": "one\n"})
    branch(q, "second", {"same.txt": "two\n"})
    enqueue(q, "first", "second")
    assert wf(q, "resume").returncode == 0
    assert states(q) == {"first": "landed", "second": "evicted"}
    second = queue(q)["second"]
    assert second["reason_kind"] == "conflict" and "first" in second["reason"]


def test_a_semantic_conflict_is_found_only_by_the_union(q):
    before = git(q, "rev-parse", "main")
    branch(q, "rename", {"a.txt": "pair"})
    branch(q, "callsite", {"b.txt": "pair"})
    enqueue(q, "rename", "callsite")
    assert wf(q, "resume").returncode == 0
    assert states(q) == {"rename": "landed", "callsite": "evicted"}
    assert queue(q)["callsite"]["reason_kind"] == "check"
    assert_target_green(q, before)


def test_approval_holds_an_entry_until_approved(repo):
    setup(repo, merge="require_approval = true")
    branch(repo, "needs-ok", {"x.txt": "ok"})
    enqueue(repo, "needs-ok")
    assert wf(repo, "resume").returncode == 0  # nothing can land: the run ends, entry waits
    assert states(repo) == {"needs-ok": "waiting_approval"}
    assert wf(repo, "approve", "needs-ok").returncode == 0
    assert wf(repo, "resume").returncode == 0
    assert states(repo) == {"needs-ok": "landed"}


def test_reject_sends_an_entry_back_with_the_reason(repo):
    setup(repo, merge="require_approval = true")
    branch(repo, "nope", {"x.txt": "ok"})
    enqueue(repo, "nope")
    wf(repo, "resume")
    assert wf(repo, "reject", "nope", "--reason", "not this week").returncode == 0
    wf(repo, "resume")
    entry = queue(repo)["nope"]
    assert (entry["state"], entry["reason_kind"], entry["reason"]) == (
        "evicted", "rejected", "not this week")


def test_policy_denial_names_the_rule(repo):
    setup(repo, policy='forbidden_paths = ["secrets/**"]\napproval_paths = [".github/**"]')
    branch(repo, "leak", {"secrets/key.txt": "ok"})
    branch(repo, "ci", {".github/workflows/ci.txt": "ok"})
    enqueue(repo, "leak", "ci")
    assert wf(repo, "resume").returncode == 0
    q = queue(repo)
    assert (q["leak"]["state"], q["leak"]["reason_kind"]) == ("evicted", "policy")
    assert "secrets/key.txt" in q["leak"]["reason"]
    assert q["ci"]["state"] == "waiting_approval"


def test_infrastructure_failures_pause_the_queue_and_are_never_bisected(q):
    branch(q, "g", {"g.txt": "ok"})
    branch(q, "flaky-infra", {"i.txt": "INFRA"})
    enqueue(q, "g", "flaky-infra")
    proc = wf(q, "resume", timeout=60)
    paused = events(q, "queue.paused")
    assert paused and "exit 75" in paused[0]["data"]["reason"]
    # the run says so, and does not report success with entries left waiting
    assert proc.returncode == 1
    assert "the merge queue stopped: checks keep failing with exit 75" in proc.stderr
    assert "queue: stopped: checks keep failing with exit 75" in proc.stdout
    shown = wf(q, "queue")
    assert "the merge queue stopped: checks keep failing with exit 75" in shown.stderr
    assert "evicted" not in states(q).values()  # an infra failure never blames an entry
    results = [e["data"]["result"] for e in events(q, "queue.check_finished")]
    assert "fail" not in results


def test_a_dirty_checked_out_target_is_not_landed_on(q):
    branch(q, "g", {"g.txt": "ok"})
    (q / "README.md").write_text("local edit\n")
    enqueue(q, "g")
    run = subprocess.Popen([sys.executable, "-m", "wf", "resume"], cwd=q,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from runwf import wait_until
        wait_until(lambda: events(q, "queue.land_refused"), what="a refused landing")
        assert states(q) == {"g": "queued"}
        assert (q / "README.md").read_text() == "local edit\n"
        git(q, "checkout", "README.md")  # the user cleans up; the queue lands on its own
        assert run.wait(timeout=60) == 0
        assert len(events(q, "queue.land_refused")) == 1  # said once, not at every retry
    finally:
        run.kill()
        run.communicate()
    assert states(q) == {"g": "landed"}


def test_an_untracked_file_the_landing_would_overwrite_holds_it_back(q):
    branch(q, "g", {"g.txt": "ok"})
    (q / "g.txt").write_text("mine\n")  # untracked in the main worktree, where main is out
    enqueue(q, "g")
    before = git(q, "rev-parse", "main")
    run = wf_bg(q, "resume")
    try:
        [refused] = wait_until(lambda: events(q, "queue.land_refused"), what="a refused landing")
        detail = refused["data"]["detail"]
        assert "Untracked working tree file 'g.txt' would be overwritten" in detail
        assert git(q, "rev-parse", "main") == before
        assert git(q, "status", "--porcelain") == "?? g.txt"  # nothing else looks modified
        (q / "g.txt").unlink()  # the user moves it away; the queue lands on its own
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate()
    assert states(q) == {"g": "landed"}
    assert git(q, "status", "--porcelain") == ""
    assert (q / "g.txt").read_text() == "ok"


def test_land_push_moves_the_remote_branch_with_a_lease(repo, origin):
    setup(repo, merge='land = "push"\nremote = "origin"')
    git(repo, "push", "-q", "origin", "main")
    before = git(origin, "rev-parse", "main")
    branch(repo, "good", {"g.txt": "ok"})
    branch(repo, "bad", {"b.txt": "BAD"})
    enqueue(repo, "good", "bad")
    proc = wf(repo, "resume")
    assert proc.returncode == 0
    assert states(repo) == {"good": "landed", "bad": "evicted"}, events(repo, "queue.paused")
    # one line per step of the queue in the plain output
    assert re.search(r"queue: check of \d entr(y|ies) failed in", proc.stdout)
    assert "bad: evicted from the queue (check: fails the checks" in proc.stdout
    assert f"good: landed on main at {git(origin, 'rev-parse', 'main')[:10]}" in proc.stdout
    remote_main = git(origin, "rev-parse", "main")
    assert remote_main != before
    assert git(origin, "show", "main:g.txt") == "ok"
    assert git(repo, "rev-parse", "origin/main") == remote_main
    # the local branch is not what the queue moves when it pushes
    assert git(repo, "rev-parse", "main") == before


def queue_behind_a_remote_that_is_down(repo: Path, tmp_path: Path) -> None:
    """Entry "good" queued to be pushed to origin, whose URL now leads nowhere."""
    setup(repo, merge='land = "push"\nremote = "origin"')
    git(repo, "push", "-q", "origin", "main")
    git(repo, "fetch", "-q", "origin")
    branch(repo, "good", {"g.txt": "ok"})
    enqueue(repo, "good")
    git(repo, "remote", "set-url", "origin", str(tmp_path / "unreachable.git"))


def test_a_failing_fetch_is_tried_again_before_the_queue_stops(repo, origin, tmp_path):
    queue_behind_a_remote_that_is_down(repo, tmp_path)
    run = wf_bg(repo, "resume")
    try:
        [retry] = wait_until(lambda: events(repo, "queue.retrying"), what="a retry")
        assert "git fetch failed" in retry["data"]["reason"] and retry["data"]["delay"] == 1.0
        git(repo, "remote", "set-url", "origin", str(origin))  # the network is back
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.communicate()
    assert states(repo) == {"good": "landed"}
    assert not events(repo, "queue.paused")
    assert git(origin, "show", "main:g.txt") == "ok"


def test_a_fetch_that_keeps_failing_stops_the_queue_and_the_run_says_so(repo, origin, tmp_path):
    queue_behind_a_remote_that_is_down(repo, tmp_path)
    proc = wf(repo, "resume", timeout=60)
    assert [e["data"]["delay"] for e in events(repo, "queue.retrying")] == [1.0, 2.0, 4.0]
    assert proc.returncode == 1
    assert "the merge queue stopped: git fetch failed" in proc.stderr
    assert states(repo) == {"good": "queued"}


FLAKY_CHECK = """
import json, pathlib, sys
present = sorted(p.name for p in pathlib.Path('.').glob('e*.txt'))
state = pathlib.Path(sys.argv[1])
for fail_once in json.loads((state / 'plan.json').read_text()):
    if present == sorted(fail_once):
        marker = state / ('-'.join(present) + '.failed')
        if not marker.exists():
            marker.write_text('x')
            sys.exit(1)
"""


def test_a_lone_culprit_is_rechecked_once_flakes_have_been_seen(repo, tmp_path):
    state = tmp_path / "flaky"
    state.mkdir()
    (state / "check.py").write_text(FLAKY_CHECK)
    (state / "plan.json").write_text(json.dumps([
        ["e0.txt", "e1.txt"],                                   # run 1: a flake, seen
        ["e0.txt", "e1.txt", "e2.txt", "e3.txt", "e9.txt"],     # run 2: the lone entry flakes
    ]))
    check = json.dumps([sys.executable, str(state / "check.py"), str(state)])
    (repo / "wf.toml").write_text(f"[merge]\ncheck = {check}\nmax_parallel_checks = 2\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "config")
    for i in range(4):
        branch(repo, f"e{i}", {f"e{i}.txt": "ok"})
    enqueue(repo, "e0", "e1", "e2", "e3")
    assert wf(repo, "resume").returncode == 0
    assert set(states(repo).values()) == {"landed"}
    assert events(repo, "queue.flaky_seen")  # the prefix of 2 failed while 4 passed
    branch(repo, "e9", {"e9.txt": "ok"})
    enqueue(repo, "e9")
    assert wf(repo, "resume").returncode == 0  # a new engine still knows flakes were seen
    assert states(repo)["e9"] == "landed"
    runs = [e for e in events(repo, "queue.check_finished") if e["data"]["entries"][-1:] == ["e9"]]
    assert [r["data"]["result"] for r in runs] == ["fail", "pass"]


def test_a_deleted_branch_is_evicted_alone(q):
    branch(q, "gone", {"x.txt": "ok"})
    branch(q, "kept", {"y.txt": "ok"})
    enqueue(q, "gone", "kept")
    git(q, "branch", "-D", "gone")
    assert wf(q, "resume").returncode == 0
    entries = queue(q)
    assert (entries["gone"]["state"], entries["gone"]["reason_kind"]) == ("evicted", "error")
    assert entries["kept"]["state"] == "landed"


def test_the_queue_without_the_suspect_lands_as_soon_as_it_is_evicted(q):
    """Q[:2] fails, so entry 0 or 1 is the culprit: the round that tests Q[:1] also tests
    Q[1:4], the queue as if entry 0 were evicted. Entry 0 is the culprit, and the rest lands
    from that result, with no check run after the eviction."""
    before = git(q, "rev-parse", "main")
    for i, kind in enumerate(["BAD", "ok", "ok", "ok"]):
        branch(q, f"e{i}", {f"f{i}.txt": kind})
    enqueue(q, "e0", "e1", "e2", "e3")
    assert wf(q, "resume").returncode == 0
    assert states(q) == {"e0": "evicted", "e1": "landed", "e2": "landed", "e3": "landed"}
    assert queue(q)["e0"]["reason_kind"] == "check"
    checks = events(q, "queue.check_finished")
    speculative = [e for e in checks if e["data"]["without"] == "e0"]
    assert [(e["data"]["entries"], e["data"]["result"]) for e in speculative] == [
        (["e1", "e2", "e3"], "pass")]
    assert speculative[0]["data"]["commit"] == git(q, "rev-parse", "main")  # the very commit
    evicted = next(e for e in events(q, "queue.evicted") if e["stream"] == "task:e0")
    assert all(e["seq"] < evicted["seq"] for e in checks)  # nothing checked after it
    assert len(checks) == 4  # Q[:2], Q[:4]; then Q[:1] beside Q[1:4]
    assert_target_green(q, before)


def test_a_check_slot_holds_exactly_the_candidate_and_keeps_ignored_files(repo, tmp_path):
    branch(repo, "two", {"a.txt": "two", "sub/b.txt": "b"})
    one, two = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "two")
    slots = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1)
    path = slots.prepare(0, two)
    (path / "a.txt").write_text("edited")
    (path / "junk.txt").write_text("untracked")
    (path / "newdir").mkdir()
    (path / "newdir" / "f.txt").write_text("untracked")
    (path / ".env").write_text("KEPT=1")  # ignored: survives like a CI cache
    assert slots.prepare(0, one) == path
    assert git(path, "rev-parse", "HEAD") == one
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert not any((path / p).exists() for p in ("a.txt", "junk.txt", "newdir", "sub"))
    assert (path / ".env").read_text() == "KEPT=1"
    slots.prepare(0, two)
    assert (path / "a.txt").read_text() == "two"
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""


def test_warming_the_slots_never_moves_one_a_check_was_prepared_in(repo, tmp_path):
    branch(repo, "two", {"a.txt": "two"})
    one, two = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "two")
    slots = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 2)
    used = slots.prepare(0, two)  # created by the check itself: its checks may be running
    slots.warm(one)  # the warm-up that started before it finishes late
    assert git(used, "rev-parse", "HEAD") == two
    assert (used / "a.txt").read_text() == "two"
    assert git(slots.path(1), "rev-parse", "HEAD") == one  # the unused slot is warmed


def test_a_slot_left_locked_by_a_killed_engine_is_usable_again(repo, tmp_path):
    branch(repo, "two", {"a.txt": "two"})
    one, two = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "two")
    path = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1).prepare(0, one)
    gitdir = Path(git(path, "rev-parse", "--absolute-git-dir"))
    (gitdir / "index.lock").write_text("")  # the checkout of a wf killed by SIGKILL
    assert CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1).prepare(0, two) == path
    assert git(path, "rev-parse", "HEAD") == two
    assert (path / "a.txt").read_text() == "two"


def test_a_slot_the_repository_no_longer_knows_is_made_again(repo, tmp_path):
    branch(repo, "two", {"a.txt": "two"})
    one, two = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "two")
    path = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1).prepare(0, one)
    (path / "stale.txt").write_text("from before")
    shutil.rmtree(git(path, "rev-parse", "--absolute-git-dir"))  # e.g. the repository remade
    assert CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1).prepare(0, two) == path
    assert git(path, "rev-parse", "HEAD") == two
    assert (path / "a.txt").read_text() == "two" and not (path / "stale.txt").exists()


def test_a_check_under_a_timeout_reports_its_exit_and_a_slow_one_is_killed(repo, tmp_path):
    head = git(repo, "rev-parse", "main")
    tree = git(repo, "rev-parse", "main^{tree}")
    slots = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1)
    quick = [[sys.executable, "-c", "import sys; sys.exit(3)"]]
    res = slots.run(0, head, tree, quick, timeout=60, environ={})
    assert (res.result, res.detail) == ("fail", f"{' '.join(quick[0])}: exit 3")
    passing = [[sys.executable, "-c", "pass"]]
    assert slots.run(0, head, tree, passing, timeout=60, environ={}).result == "pass"
    # the check and a child it started in the background both go with the process group
    pidfile = tmp_path / "child.pid"
    slow = [[sys.executable, "-c", "import subprocess, sys, time; p = subprocess.Popen("
             "[sys.executable, '-c', 'import time; time.sleep(60)']); "
             f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)"]]
    res = slots.run(0, head, tree, slow, timeout=1.0, environ={})
    assert res.result == "fail" and res.detail.endswith("timed out")
    assert res.duration < 30
    child = int(pidfile.read_text())
    wait_until(lambda: not pid_alive(child), timeout=10, what="the check's child killed")


def test_a_slot_says_when_its_check_has_started_and_when_it_never_will(repo, tmp_path):
    # the queue builds chains ahead only once the checks have started, not while they start
    head = git(repo, "rev-parse", "main")
    tree = git(repo, "rev-parse", "main^{tree}")
    slots = CheckSlots(repo, tmp_path / "worktrees", tmp_path / "logs", 1)
    go = tmp_path / "go"
    waits = [[sys.executable, "-c", "import os, sys, time\n"
              f"while not os.path.exists({str(go)!r}): time.sleep(0.01)"]]
    spawned = threading.Event()
    results = []
    runner = threading.Thread(target=lambda: results.append(slots.run(
        0, head, tree, waits, timeout=60, environ={}, spawned=spawned)))
    runner.start()
    assert spawned.wait(timeout=30)  # set while the check still runs: it waits for `go`
    assert not results
    go.write_text("")
    runner.join(timeout=60)
    assert results[0].result == "pass"
    never = threading.Event()  # a candidate that cannot be checked out starts nothing
    res = slots.run(0, "0" * 40, tree, waits, timeout=60, environ={}, spawned=never)
    assert res.result == "infra" and never.is_set()
