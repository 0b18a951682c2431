"""Shared fixtures. Every test gets a hermetic git: no user or system config, a pinned identity,
no inherited repository variables."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeforge import TOKEN, FakeForge, Specs
from helpers import make_origin, make_repo

# Variables that would point git at another repository (set when tests run from a git hook).
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
              "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_PREFIX",
              "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")

# A job started in the background by a shell without job control (`cmd &` in a script, some CI
# runners) inherits SIGINT ignored, and so would every `wf run` the tests start: the Ctrl-C
# tests would then test nothing. Ctrl-C's default comes back here, and with it the children's.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

TEST_NAME = "wf test"
TEST_EMAIL = "test@wf.invalid"


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", TEST_NAME)
        monkeypatch.setenv(f"GIT_{role}_EMAIL", TEST_EMAIL)
    for name in _REPO_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository at ``tmp_path / "repo"`` on branch main with three commits: README.md,
    src/utils.py, and a .gitignore that ignores ``.env``."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def origin(repo: Path, tmp_path: Path) -> Path:
    """A bare repository at ``tmp_path / "origin.git"``: ``repo``'s remote ``origin``, with
    ``main`` pushed and tracked."""
    return make_origin(repo, tmp_path / "origin.git")


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address ("127.0.0.1:PORT") of a Temporal dev server shared by this pytest process's
    tests (one per xdist worker); skipped where temporalio is not installed."""
    pytest.importorskip("temporalio")
    from temporal_server import running_server

    with running_server(tmp_path_factory.mktemp("temporal")) as server:
        yield server.address


@pytest.fixture(scope="session")
def forge_specs() -> Specs:
    """The forges' OpenAPI descriptions, loaded once per session."""
    return Specs()


@pytest.fixture
def forge(forge_specs: Specs) -> Iterator[FakeForge]:
    """The fake GitHub + GitLab on 127.0.0.1 (token ``fakeforge.TOKEN``). A request or response
    that does not match the OpenAPI descriptions fails the test."""
    fake = FakeForge(forge_specs, TOKEN)
    try:
        yield fake
    finally:
        fake.close()
    assert fake.errors == [], "wf or the fake forge drifted from the OpenAPI description"
