"""Fixtures for the provider tests: the fake forge (specs loaded once per session) and
repositories whose ``origin`` is a real bare repository the fake forge serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeforge import FakeForge, Specs
from helpers import commit_files, git

TOKEN = "wf-test-token-5b1f0c9e7a"  # distinctive, so a leak is easy to find


@pytest.fixture(scope="session")
def forge_specs() -> Specs:
    return Specs()


@pytest.fixture
def forge(forge_specs: Specs) -> Iterator[FakeForge]:
    fake = FakeForge(forge_specs, TOKEN)
    try:
        yield fake
    finally:
        fake.close()
    assert fake.errors == [], "wf or the fake drifted from the OpenAPI description"


def push_feature(repo: Path, branch: str = "wf/feature", files: dict | None = None) -> str:
    """Commit ``files`` on a new ``branch`` off main, push it to origin, return its sha."""
    git(repo, "checkout", "--quiet", "-b", branch, "main")
    sha = commit_files(repo, files or {"feature.txt": f"{branch}\n"}, f"work on {branch}")
    git(repo, "push", "--quiet", "origin", branch)
    git(repo, "checkout", "--quiet", "main")
    return sha
