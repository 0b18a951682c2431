"""Providers come from the ``wf.providers`` entry points, so one can be added from outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wf.errors import ConfigError
from wf.providers import factory


def test_github_and_gitlab_are_registered() -> None:
    from wf.providers import github, gitlab

    assert factory("github") is github.connect and factory("gitlab") is gitlab.connect
    with pytest.raises(ConfigError, match="unknown provider kind 'gitea'; known: github, gitlab"):
        factory("gitea")


def test_a_provider_installed_from_outside_is_found(tmp_path: Path) -> None:
    dist = tmp_path / "wf_gitea-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wf-gitea\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[wf.providers]\ngitea = wf_gitea:connect\n")
    (tmp_path / "wf_gitea.py").write_text(
        "class GiteaForge:\n    kind = 'gitea'\n"
        "    def __init__(self, target): self.target = target\n"
        "def connect(target, environ):\n    return GiteaForge(target)\n")
    code = ("from wf.providers import factory\n"
            "from wf.providers.remote import resolve_target\n"
            "t = resolve_target(kind='gitea', api_url='https://git.corp/api/v1', repo='a/b',"
            " remote='origin', remote_url=None, environ={})\n"
            "print(factory('gitea')(t, {}).kind, t.api_url)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["gitea", "https://git.corp/api/v1"]
