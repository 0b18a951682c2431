"""Random queues of good, bad and conflicting branches: the queue's invariants always hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers import make_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runwf import events
from test_queue_cases import CHECK_PY, git

KINDS = st.lists(st.sampled_from(["ok", "ok", "ok", "BAD", "clash"]), min_size=1, max_size=7)

# The same verdicts as CHECK_PY for these kinds, printing what failed the way a test runner
# does ("named"), or that and a file that has nothing to do with it ("noisy": a wrong hint).
NAMING_CHECK = """
import pathlib, sys
files = sorted(p for p in pathlib.Path('.').rglob('*.txt') if '.git' not in p.parts)
bad = [p for p in files if 'BAD' in p.read_text()]
for p in bad:
    print(f'FAILED {p.as_posix()}')
if bad and sys.argv[1] == 'noisy':
    print(f'see {files[0].as_posix()}')
sys.exit(1 if bad else 0)
"""


def wf_q(repo, *args):
    return subprocess.run([sys.executable, "-m", "wf", *args], cwd=repo, capture_output=True,
                          text=True, timeout=120)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kinds=KINDS, parallel=st.integers(1, 3), output=st.sampled_from(["silent", "named",
                                                                          "noisy"]))
def test_random_queues_keep_the_invariants(tmp_path_factory, kinds, parallel, output):
    """Whatever the checks print (nothing, what failed, or what failed and a wrong hint)."""
    root = tmp_path_factory.mktemp("q")
    repo = make_repo(root / "repo")
    (root / "check.py").write_text(CHECK_PY if output == "silent" else NAMING_CHECK)
    check = json.dumps([sys.executable, str(root / "check.py")]
                       + ([] if output == "silent" else [output]))
    (repo / "wf.toml").write_text(
        f"[merge]\ncheck = {check}\nmax_parallel_checks = {parallel}\n")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "config")
    before = git(repo, "rev-parse", "main")
    for i, kind in enumerate(kinds):
        git(repo, "checkout", "-q", "-b", f"e{i}", "main")
        # "clash" branches all write the same file: only the first of them can land
        name = "clash.txt" if kind == "clash" else f"f{i}.txt"
        (repo / name).write_text(f"{kind} {i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"e{i}")
        git(repo, "checkout", "-q", "main")
        assert wf_q(repo, "queue", "add", "--branch", f"e{i}", "--id", f"e{i}").returncode == 0
    proc = wf_q(repo, "resume")
    assert proc.returncode == 0, proc.stderr
    entries = {e["task_id"]: e for e in json.loads(wf_q(repo, "queue", "--json").stdout)}

    first_clash = next((i for i, k in enumerate(kinds) if k == "clash"), None)
    for i, kind in enumerate(kinds):
        entry = entries[f"e{i}"]
        if kind == "BAD":
            assert (entry["state"], entry["reason_kind"]) == ("evicted", "check")
        elif kind == "clash" and i != first_clash:
            assert (entry["state"], entry["reason_kind"]) == ("evicted", "conflict")
        else:
            assert entry["state"] == "landed", (kinds, entry)
    # the target moved only to trees that passed, and holds exactly what was reported landed
    passed = {e["data"]["tree"].split("/")[0] for e in events(repo, "queue.check_finished")
              if e["data"]["result"] == "pass"}
    reflog = git(repo, "reflog", "--format=%H", "main").split()
    for commit in reflog[:reflog.index(before)]:
        assert git(repo, "rev-parse", f"{commit}^{{tree}}") in passed
    for i in range(len(kinds)):
        contained = subprocess.run(["git", "merge-base", "--is-ancestor", f"e{i}", "main"],
                                   cwd=repo).returncode == 0
        assert contained == (entries[f"e{i}"]["state"] == "landed")
    # the final tree passes the check
    assert subprocess.run([*json.loads(check)], cwd=repo).returncode == 0
    shutil.rmtree(root, ignore_errors=True)
