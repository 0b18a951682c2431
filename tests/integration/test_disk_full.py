"""No space left on device for wf's own step (the commit of an agent's work): wf stops with
exit 5 and says where, charges no attempt, and `wf resume` commits the work once there is room,
without running the agent again. The full disk is real: a small tmpfs over `.git/objects`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from runwf import agent_cmd, events, journal_pids, status, wf, write_tasks

SIZE = "4m"


@pytest.fixture
def full_objects(repo: Path, tmp_path: Path):
    """``repo``'s object store on a tmpfs of its own, and a way to fill it and to empty it."""
    objects = repo / ".git" / "objects"
    saved = tmp_path / "objects-saved"
    shutil.copytree(objects, saved)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs",
                              str(objects)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        shutil.copytree(saved, objects, dirs_exist_ok=True)
        ballast = objects / "ballast"

        def fill() -> None:
            with open(ballast, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass

        yield fill, lambda: ballast.unlink()
    finally:
        subprocess.run(["umount", "-l", str(objects)], capture_output=True)


def test_a_full_disk_when_wf_commits_stops_wf_with_exit_5_and_resume_commits(repo, tmp_path,
                                                                           full_objects):
    fill, make_room = full_objects
    journal = tmp_path / "journal"
    text = f"[agents.e]\ncommand = {agent_cmd('edit', '', journal)}\n"  # wf commits its work
    text += '[[task]]\nid = "full"\nprompt = "x"\nagent = "e"\n'
    fill()
    out = wf(repo, "run", str(write_tasks(repo, text)))
    assert out.returncode == 5, out.stdout + out.stderr
    assert "no space left on device" in out.stderr and str(repo) in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 2
    assert not events(repo, "attempt.finished")  # no attempt charged
    make_room()
    resumed = wf(repo, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    row = status(repo)["full"]
    assert row["state"] == "done" and row["attempts"] == 1
    assert len(journal_pids(journal, "full")) == 1  # the agent ran once
    shown = subprocess.run(["git", "show", "--stat", "wf/full"], cwd=repo, capture_output=True,
                           text=True).stdout
    assert "notes/full.txt" in shown
