"""Malformed task files and configs: always exit 2 with one clear line, never a traceback.

`wf run --dry-run` checks a file exactly as `wf run` does, without running anything, so
whatever hypothesis generates is never executed."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import tomli_w
from helpers import make_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wf.cli import main

KEYS = ["id", "prompt", "agent", "depends_on", "base", "timeout", "no_output_timeout", "retry",
        "setup", "max_parallel", "agents", "command", "env", "maximum_attempts",
        "initial_interval", "jitter", "backoff_coefficient", "non_retryable", "port_range",
        "worktree_root", "task", "pass_env", "log_max_bytes"]
IDS = st.sampled_from(["ok", "a", "../x", "--upload-pack=x", "", "A", "x" * 64, "a b", "é",
                       "a..b", "x.lock", "-x"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True), st.text(max_size=20), IDS)
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
task_tables = st.lists(st.dictionaries(keys, values, max_size=6), min_size=0, max_size=4)
documents = st.one_of(
    st.dictionaries(keys, values, max_size=6),
    st.builds(lambda t, rest: {**rest, "task": t}, task_tables,
              st.dictionaries(keys, values, max_size=3)),
)


def _toml(doc) -> str | None:
    def clean(v):  # TOML has no null
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v if x is not None]
        return v
    try:
        return tomli_w.dumps(clean(doc))
    except (TypeError, ValueError, OverflowError):
        return None


def run_cli(cwd: Path, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            with pytest.raises(SystemExit) as exit_info:
                main(list(args))
    finally:
        os.chdir(old)
    return exit_info.value.code, err.getvalue()


def assert_clean_exit(code: int, err: str) -> None:
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert lines[0].startswith("wf: error:") and len(lines) <= 2, err


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad-input")
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield make_repo(base / "repo"), base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_generated_task_files(sandbox, doc):
    repo, base = sandbox
    text = _toml(doc)
    if text is None:
        return
    path = base / "tasks.toml"
    path.write_text(text)
    assert_clean_exit(*run_cli(repo, "run", str(path), "--dry-run"))


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_arbitrary_text_as_a_task_file(sandbox, text):
    repo, base = sandbox
    path = base / "raw.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    code, err = run_cli(repo, "run", str(path), "--dry-run")
    assert_clean_exit(code, err)


@settings(max_examples=100, deadline=None)
@given(documents)
def test_generated_wf_toml(sandbox, doc):
    repo, base = sandbox
    text = _toml(doc)
    if text is None:
        return
    (repo / "wf.toml").write_text(text)
    try:
        assert_clean_exit(*run_cli(repo, "run", "-p", "x", "--agent", "shell", "--dry-run"))
    finally:
        (repo / "wf.toml").unlink()


def test_a_missing_tasks_file_and_a_directory(sandbox):
    repo, base = sandbox
    for target in (base / "missing.toml", base):
        code, err = run_cli(repo, "run", str(target))
        assert code == 2 and "Traceback" not in err


def test_detached_head_without_a_base_is_a_config_error(tmp_path):
    repo = make_repo(tmp_path / "r")
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=repo, check=True)
    code, err = run_cli(repo, "run", "-p", "x", "--agent", "shell", "--dry-run")
    assert code == 2 and "detached HEAD" in err
