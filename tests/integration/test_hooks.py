"""Hooks through the real `wf` command: a run delivers every event signed, kill -9 loses
none, the wf hooks commands, bad config in one line, Ctrl-C, a sink plugin, the desktop note."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hookserver import Receiver, verify
from runwf import agent_cmd, db_path, events, fast_retry, wait_until, wf, wf_bg, write_tasks

from wf.hooks.signing import message_id

KEY = b"k" * 24
SECRET = "whsec_" + base64.b64encode(KEY).decode()
ENV = {"HOOK_SECRET": SECRET}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def configure(repo: Path, text: str) -> None:
    (repo / "wf.toml").write_text(text)
    subprocess.run(["git", "add", "wf.toml"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "wf.toml"], cwd=repo, check=True)


def endpoint(receiver: Receiver, name: str, events: str = '["*"]', extra: str = "") -> str:
    return (f'[[hooks]]\nname = "{name}"\nurl = "{receiver.url("/" + name)}"\n'
            f'events = {events}\nsecret_env = "HOOK_SECRET"\n{extra}\n')


def tasks(repo: Path, n: int = 2, agent: str = "commit") -> Path:
    body = fast_retry(attempts=1) + f"\n[agents.a]\ncommand = {agent_cmd(agent)}\n"
    for i in range(n):
        body += f'\n[[task]]\nid = "t{i}"\nprompt = "p{i}"\nagent = "a"\n'
    return write_tasks(repo, body)


def hooked_events(repo: Path) -> list[dict]:
    return [e for e in events(repo) if not e["type"].startswith("hook.")]


def keys(repo: Path) -> dict[int, str | None]:
    import sqlite3

    con = sqlite3.connect(f"file:{db_path(repo)}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT seq, idempotency_key FROM events").fetchall())
    finally:
        con.close()


def test_a_run_delivers_every_event_signed_and_the_chat_message(repo, receiver):
    configure(repo, endpoint(receiver, "all") + endpoint(
        receiver, "chat", '["attention", "finished"]', 'format = "slack"'))
    proc = wf(repo, "run", str(tasks(repo, 2, "fail")), env=ENV)
    assert proc.returncode == 1, proc.stderr
    got = receiver.accepted("/all")
    want = {e["seq"] for e in hooked_events(repo)}
    assert {r["json"]["seq"] for r in got} == want
    assert all(verify(KEY, r["headers"], r["body"]) for r in got)
    chat = receiver.accepted("/chat")
    assert sorted(r["json"]["text"].split(": ", 1)[1].split(" ")[0] for r in chat) == \
        ["run", "t0:", "t1:"]  # two failures (attention) and the run's end (finished)
    finished = next(r["json"] for r in got if r["json"]["type"] == "run.finished")
    assert finished["data"]["summary"]["states"] == {"failed": 2}
    health = {h["name"]: h for h in json.loads(wf(repo, "hooks", "--json").stdout)}
    assert health["all"]["delivered"] == len(want) and health["all"]["pending"] == 0
    assert health["all"]["state"] == "ok" and health["chat"]["delivered"] == 3


def test_kill_9_during_delivery_then_resume_loses_nothing(repo, receiver):
    configure(repo, endpoint(receiver, "all", extra="max_in_flight = 1"))
    receiver.delay = 0.05
    proc = wf_bg(repo, "run", str(tasks(repo, 4)), env=ENV)
    wait_until(lambda: len(receiver.requests("/all")) >= 6, what="deliveries under way")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    receiver.delay = 0.0
    resumed = wf(repo, "resume", env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    deliver = wf(repo, "hooks", "deliver", "--json", env=ENV)
    assert deliver.returncode in (0, 3), deliver.stderr
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for r in receiver.accepted("/all"):
        by_id[r["headers"]["webhook-id"]].add(r["body"])
    key_of = keys(repo)
    want = {message_id("all", e["seq"], key_of[e["seq"]]) for e in hooked_events(repo)}
    assert want <= set(by_id)  # every event delivered
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a repeat is the same message
    health = {h["name"]: h for h in json.loads(wf(repo, "hooks", "--json").stdout)}
    assert health["all"]["pending"] == 0 and health["all"]["retrying"] == 0


def test_dead_letters_replay_and_deliver_without_an_engine(repo, receiver):
    configure(repo, endpoint(receiver, "all", '["task.succeeded"]', "schedule = []"))
    receiver.answer("/all", "500")
    assert wf(repo, "run", str(tasks(repo, 2)), env=ENV).returncode == 0
    dead = json.loads(wf(repo, "hooks", "dlq", "--json").stdout)
    assert [d["type"] for d in dead] == ["task.succeeded"] * 2
    assert all(d["status"] == 500 and d["attempts"] == 1 for d in dead)
    failed = json.loads(wf(repo, "hooks", "deliveries", "--failed", "--json").stdout)
    assert {f["id"] for f in failed} == {d["id"] for d in dead}
    receiver.answer("/all", "200")
    replay = wf(repo, "hooks", "replay", dead[0]["id"], "--json")
    assert replay.returncode == 0, replay.stderr
    out = wf(repo, "hooks", "deliver", "--json", env=ENV)
    assert out.returncode == 0 and json.loads(out.stdout)["delivered"] == 1, out.stderr
    assert wf(repo, "hooks", "replay", "--all-failed").returncode == 0
    assert json.loads(wf(repo, "hooks", "deliver", "--json", env=ENV).stdout)["delivered"] == 1
    assert json.loads(wf(repo, "hooks", "dlq", "--json").stdout) == []
    ids = [r["headers"]["webhook-id"] for r in receiver.requests("/all")]
    assert sorted(set(ids)) == sorted(d["id"] for d in dead) and len(ids) == 4


def test_a_gone_endpoint_is_shown_in_status_and_enabled_again(repo, receiver):
    configure(repo, endpoint(receiver, "gone", '["task.*"]'))
    receiver.answer("/gone", "410")
    assert wf(repo, "run", str(tasks(repo, 1)), env=ENV).returncode == 0
    status = wf(repo, "status")
    assert "hook endpoint gone is disabled (the endpoint answered 410 Gone)" in status.stderr
    receiver.answer("/gone", "200")
    assert wf(repo, "hooks", "enable", "gone").returncode == 0
    assert wf(repo, "hooks", "deliver", env=ENV).returncode == 0
    assert "disabled" not in wf(repo, "status").stderr
    assert len(receiver.accepted("/gone")) == len([e for e in hooked_events(repo)
                                                   if e["type"].startswith("task.")])


def test_wf_hooks_test_sends_a_signed_test_event(repo, receiver):
    configure(repo, endpoint(receiver, "ok") + endpoint(receiver, "bad"))
    receiver.answer("/bad", "500")
    out = wf(repo, "hooks", "test", "ok", "--json", env=ENV)
    assert out.returncode == 0, out.stderr
    [req] = receiver.requests("/ok")
    assert verify(KEY, req["headers"], req["body"])
    assert json.loads(req["body"])["type"] == "hook.test"
    bad = wf(repo, "hooks", "test", "bad", env=ENV)
    assert bad.returncode == 1 and "HTTP 500" in bad.stdout
    assert wf(repo, "hooks", "test", "nope", env=ENV).returncode == 2


@pytest.mark.parametrize("table, words", [
    ('name = "x"\nurl = "ftp://h.test/x"', "only http:// and https://"),
    ('name = "x"\nurl = "https://u:pw@h.test/x?token=tok3n"\nevents = ["attenton"]',
     "did you mean 'attention'"),
    ('name = "x"\nurl = "https://h.test/x"\nsecret_env = "NOT_SET_ANYWHERE"',
     "the variable NOT_SET_ANYWHERE is not set"),
    ('name = "x"\nsink = "nosuchsink"', "no sink named 'nosuchsink'"),
])
def test_bad_config_is_one_line_and_exit_2(repo, table, words):
    configure(repo, f"[[hooks]]\n{table}\n")
    for argv in (["run", "-p", "x", "--agent", "shell"], ["hooks", "deliver"]):
        proc = wf(repo, *argv, env=ENV)
        assert proc.returncode == 2, proc.stderr
        first = proc.stderr.splitlines()[0]
        assert words in first and "Traceback" not in proc.stderr
        assert "tok3n" not in proc.stderr and "pw@" not in proc.stderr


def test_ctrl_c_stops_hooks_deliver_follow_within_a_second(repo, receiver):
    configure(repo, endpoint(receiver, "all"))
    proc = wf_bg(repo, "hooks", "deliver", "--follow", env=ENV)
    wait_until(lambda: any(e["type"] == "hook.endpoint_added" for e in events(repo)),
               what="delivery started")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=5)
    assert time.monotonic() - t0 < 1.0 and proc.returncode == 130, err


def test_a_sink_plugin_from_the_entry_point_group(repo, tmp_path):
    plug = tmp_path / "plug"
    (plug / "wfplug-0.1.dist-info").mkdir(parents=True)
    (plug / "wfplug-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wfplug\nVersion: 0.1\n")
    (plug / "wfplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[wf.sinks]\nlines = wfplug:make\n")
    (plug / "wfplug.py").write_text(
        "import json\n"
        "class Lines:\n"
        "    def __init__(self, path):\n        self.path = path\n"
        "    def deliver(self, m):\n"
        "        with open(self.path, 'a') as f:\n"
        "            f.write(json.dumps([m.id, m.type]) + '\\n')\n"
        "    def close(self):\n        pass\n"
        "def make(options, context):\n    return Lines(options['to'])\n")
    out = tmp_path / "plugin.out"
    configure(repo, f'[[hooks]]\nname = "p"\nsink = "lines"\nevents = ["finished"]\n'
                    f'options = {{ to = "{out}" }}\n')
    env = {"PYTHONPATH": f"{plug}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = wf(repo, "run", str(tasks(repo, 1)), env=env)
    assert proc.returncode == 0, proc.stderr
    [line] = out.read_text().splitlines()
    assert json.loads(line)[1] == "run.finished"


@pytest.mark.skipif(shutil.which("notify-send") is not None, reason="notify-send is here")
def test_desktop_notifications_say_once_where_there_is_no_notify_send(repo):
    configure(repo, "[notify]\ndesktop = true\n")
    proc = wf(repo, "run", str(tasks(repo, 2, "fail")))
    assert proc.returncode == 1
    assert proc.stderr.count("desktop notifications are off: notify-send") == 1


def test_the_secret_never_appears(repo, receiver):
    configure(repo, endpoint(receiver, "all"))
    receiver.then("/all", "500")
    wf(repo, "run", str(tasks(repo, 1)), env=ENV)
    outputs = [wf(repo, *argv, env=ENV) for argv in (
        ["hooks", "--json"], ["hooks", "deliveries", "--json"], ["hooks", "dlq"],
        ["events"], ["status"], ["hooks", "test", "all"])]
    text = json.dumps(events(repo)) + "".join(p.stdout + p.stderr for p in outputs)
    assert SECRET not in text and KEY.decode() not in text
    assert SECRET.encode() not in db_path(repo).read_bytes()
