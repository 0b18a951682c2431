"""A damaged event log is said to be damaged (exit 4), with a copy kept and the way out, never
read as something else: not an internal error, not an empty log."""

from __future__ import annotations

import sqlite3

from runwf import agent_cmd, db_path, wf, write_tasks


def _one_done_task(repo):
    text = f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "quick"\n'
    done = wf(repo, "run", str(write_tasks(repo, text)))
    assert done.returncode == 0, done.stderr


def _copies(repo):
    return sorted(p.name for p in db_path(repo).parent.glob("wf.db.damaged-*")
                  if not p.name.endswith(("-wal", "-shm")))


def test_an_event_whose_data_is_not_json_is_reported_as_damage(repo):
    _one_done_task(repo)
    con = sqlite3.connect(db_path(repo))
    con.execute("UPDATE events SET data = '{not json' WHERE type = 'task.submitted'")
    con.commit()
    con.close()
    for args in (["events"], ["events", "--json"]):
        out = wf(repo, *args)
        assert out.returncode == 4, out.stderr
        assert "damaged" in out.stderr and "task.submitted" in out.stderr
        assert "not valid JSON" in out.stderr and "internal error" not in out.stderr
        assert "hint:" in out.stderr and "Traceback" not in out.stderr
    assert len(_copies(repo)) == 1  # one copy of one state of the file, not one per command


def test_a_log_truncated_to_zero_bytes_is_not_read_as_empty(repo):
    _one_done_task(repo)
    for side in ("-wal", "-shm"):
        db_path(repo).with_name("wf.db" + side).unlink(missing_ok=True)
    db_path(repo).write_bytes(b"")
    for args in (["status"], ["status", "--json"], ["queue"], ["events"], ["run", "-p", "x"]):
        out = wf(repo, *args)
        assert out.returncode == 4, (args, out.stdout, out.stderr)
        assert "is empty (0 bytes)" in out.stderr and "wf/a" in out.stderr
        assert "no tasks" not in out.stdout
    assert db_path(repo).stat().st_size == 0  # nothing was written over it


def test_a_file_that_is_not_sqlite_is_reported_as_damage(repo):
    _one_done_task(repo)
    for side in ("-wal", "-shm"):
        db_path(repo).with_name("wf.db" + side).unlink(missing_ok=True)
    db_path(repo).write_bytes(b"this is not a database, it was overwritten" * 100)
    out = wf(repo, "status")
    assert out.returncode == 4, out.stderr
    assert "damaged" in out.stderr and "a copy is at" in out.stderr
    assert _copies(repo)


def test_an_empty_log_in_a_repository_wf_never_ran_in_is_a_new_log(repo):
    db_path(repo).parent.mkdir(parents=True)
    db_path(repo).write_bytes(b"")  # as sqlite3.connect leaves it before the schema
    out = wf(repo, "status")
    assert out.returncode == 0, out.stderr
