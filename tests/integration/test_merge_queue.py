"""The merge queue end to end: real repositories, real agents, real checks."""

from __future__ import annotations

import json
import subprocess
import sys

from runwf import agent_cmd, fast_retry, status, wf, write_tasks

# A check that fails when any notes file says BAD: a "bad" agent writes that word.
CHECK = json.dumps([sys.executable, "-c",
                    "import pathlib,sys; sys.exit(any('BAD' in p.read_text() "
                    "for p in pathlib.Path('notes').glob('*.txt')) if pathlib.Path('notes')"
                    ".exists() else 0)"])


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def queue(repo):
    proc = wf(repo, "queue", "--json")
    assert proc.returncode == 0, proc.stderr
    return {e["task_id"]: e for e in json.loads(proc.stdout)}


def bad_agent(tmp_path):
    script = tmp_path / "bad_agent.py"
    script.write_text("import os, pathlib\np = pathlib.Path('notes')\np.mkdir(exist_ok=True)\n"
                      "(p / (os.environ['WF_TASK_ID'] + '.txt')).write_text('BAD')\n")
    return json.dumps([sys.executable, str(script)])


def tasks(repo, good, bad=(), *, extra="", bad_cmd=None):
    text = fast_retry(1) + extra
    text += f"\n[merge]\nauto = true\ncheck = {CHECK}\nmax_parallel_checks = 2\n"
    text += f"\n[agents.good]\ncommand = {agent_cmd('commit')}\n"
    if bad_cmd:
        text += f"\n[agents.bad]\ncommand = {bad_cmd}\n"
    for tid in good:
        text += f'\n[[task]]\nid = "{tid}"\nprompt = "p"\nagent = "good"\n'
    for tid in bad:
        text += f'\n[[task]]\nid = "{tid}"\nprompt = "p"\nagent = "bad"\n'
    return write_tasks(repo, text)


def test_a_clean_batch_lands_and_the_main_worktree_follows(repo):
    before = git(repo, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks(repo, ["a", "b", "c"])))
    assert proc.returncode == 0, proc.stderr
    assert {t: r["state"] for t, r in status(repo).items()} == dict.fromkeys("abc", "merged")
    assert set(git(repo, "ls-tree", "--name-only", "main", "notes/").split()) == {
        "notes/a.txt", "notes/b.txt", "notes/c.txt"}
    assert git(repo, "status", "--porcelain") == ""  # fast-forwarded, not left modified
    assert (repo / "notes" / "a.txt").exists()
    # every commit the target moved to passed the check: its reflog holds only tested trees
    checked = {e["data"]["tree"].split("/")[0] for e in _events(repo, "queue.check_finished")
               if e["data"]["result"] == "pass"}
    reflog = git(repo, "reflog", "--format=%H", "main").split()  # newest first
    moves = reflog[:reflog.index(before)]
    assert moves
    for commit in moves:
        assert git(repo, "rev-parse", f"{commit}^{{tree}}") in checked
    assert all(e["state"] == "landed" for e in queue(repo).values())


def test_a_culprit_is_isolated_and_evicted_with_its_reason(repo, tmp_path):
    proc = wf(repo, "run", str(tasks(repo, ["g1", "g2", "g3"], ["bad"],
                                     bad_cmd=bad_agent(tmp_path))))
    assert proc.returncode == 1
    q = queue(repo)
    assert q["bad"]["state"] == "evicted" and q["bad"]["reason_kind"] == "check"
    assert {t for t, e in q.items() if e["state"] == "landed"} == {"g1", "g2", "g3"}
    assert "notes/bad.txt" not in git(repo, "ls-tree", "-r", "--name-only", "main")


def _events(repo, type_):
    from runwf import events
    return events(repo, type_)


def test_plain_branches_can_go_through_the_queue(repo):
    (repo / "wf.toml").write_text(f"[merge]\ncheck = {CHECK}\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "queue config")
    for i in (1, 2):
        git(repo, "checkout", "-q", "-b", f"agent/{i}", "main")
        (repo / f"f{i}.txt").write_text(str(i))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"work {i}")
    git(repo, "checkout", "-q", "main")
    for i in (1, 2):
        proc = wf(repo, "queue", "add", "--branch", f"agent/{i}")
        assert proc.returncode == 0, proc.stderr
    assert wf(repo, "queue", "add", "--branch", "nope").returncode == 2
    proc = wf(repo, "resume")
    assert proc.returncode == 0, proc.stderr
    q = queue(repo)
    assert {k: v["state"] for k, v in q.items()} == {"agent-1": "landed", "agent-2": "landed"}
    assert (repo / "f1.txt").exists() and (repo / "f2.txt").exists()


RESOLVER = """
import os, pathlib, subprocess
p = pathlib.Path("shared.txt")
task = os.environ["WF_TASK_ID"]
if "conflicts with" in os.environ["WF_PROMPT"]:
    keep = [l for l in p.read_text().splitlines() if not l.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    p.write_text("\\n".join(keep) + "\\n")   # keep both sides; wf commits the merge
else:
    p.write_text(f"line from {task}\\n")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", task], check=True)
"""


def test_resolve_conflicts_sends_the_task_back_to_its_agent(repo, tmp_path):
    script = tmp_path / "resolver.py"
    script.write_text(RESOLVER)
    text = fast_retry(2) + f"\n[merge]\nauto = true\ncheck = {CHECK}\nresolve_conflicts = true\n"
    text += f"\n[agents.r]\ncommand = {json.dumps([sys.executable, str(script)])}\n"
    text += '\n[[task]]\nid = "left"\nprompt = "p"\nagent = "r"\n'
    text += '\n[[task]]\nid = "right"\nprompt = "p"\nagent = "r"\n'
    proc = wf(repo, "run", str(write_tasks(repo, text)))
    assert proc.returncode == 0, wf(repo, "events").stdout
    assert {t: r["state"] for t, r in status(repo).items()} == {"left": "merged",
                                                                "right": "merged"}
    shared = (repo / "shared.txt").read_text()
    assert "line from left" in shared and "line from right" in shared
    assert "<<<<<<<" not in shared
    conflict = _events(repo, "attempt.conflict")
    assert len(conflict) == 1 and conflict[0]["data"]["files"] == ["shared.txt"]
