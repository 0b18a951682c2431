"""Token lookup, first match wins, and the one-line errors that name the variables."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wf.errors import ForgeAuthError
from wf.providers.auth import Token, github_token, gitlab_token

NO_GH = {"PATH": "/nonexistent"}  # no `gh` on PATH


@pytest.mark.parametrize(("env", "source"), [
    ({"GH_TOKEN": "a", "GITHUB_TOKEN": "b"}, "GH_TOKEN"),
    ({"GITHUB_TOKEN": "b", "GH_ENTERPRISE_TOKEN": "c"}, "GITHUB_TOKEN"),
    ({"GH_TOKEN": " ", "GITHUB_TOKEN": "b"}, "GITHUB_TOKEN"),  # blank counts as unset
])
def test_github_variables_in_order(env: dict[str, str], source: str) -> None:
    assert github_token("github.com", {**NO_GH, **env}).source == source


def test_enterprise_variables_only_for_other_hosts() -> None:
    env = {**NO_GH, "GH_ENTERPRISE_TOKEN": "c", "GITHUB_ENTERPRISE_TOKEN": "d"}
    assert github_token("ghe.corp", env) == Token("c", "GH_ENTERPRISE_TOKEN")
    assert github_token("ghe.corp", {**NO_GH, "GITHUB_ENTERPRISE_TOKEN": "d"}).value == "d"
    with pytest.raises(ForgeAuthError) as err:
        github_token("github.com", env)
    assert err.value.message == ("no GitHub token for github.com: set GH_TOKEN or GITHUB_TOKEN, "
                                 "or log in with `gh auth login --hostname github.com`")


def test_gh_auth_token_is_asked_for_the_host(tmp_path: Path) -> None:
    gh = tmp_path / "gh"
    gh.write_text('#!/bin/sh\n[ "$1 $2 $3 $4" = "auth token --hostname ghe.corp" ] '
                  '&& echo from-gh && exit 0\nexit 1\n')
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{tmp_path}{os.pathsep}/usr/bin:/bin"}
    token = github_token("ghe.corp", env)
    assert (token.value, token.source) == ("from-gh", "gh auth token --hostname ghe.corp")
    with pytest.raises(ForgeAuthError, match="GH_ENTERPRISE_TOKEN or GITHUB_ENTERPRISE_TOKEN"):
        github_token("other.corp", env)  # gh knows no token for that host


def test_gitlab_token_and_the_ci_job_token_message() -> None:
    assert gitlab_token("gitlab.com", {"GITLAB_TOKEN": "g", "CI_JOB_TOKEN": "j"}).value == "g"
    with pytest.raises(ForgeAuthError) as err:
        gitlab_token("gitlab.com", {"CI_JOB_TOKEN": "j"})
    assert "CI_JOB_TOKEN" in err.value.message and "GITLAB_TOKEN" in err.value.message
    assert "cannot create" in err.value.message and "\n" not in err.value.message
    with pytest.raises(ForgeAuthError, match="no GitLab token for gitlab.com: set GITLAB_TOKEN"):
        gitlab_token("gitlab.com", {})


def test_a_token_never_shows_its_value() -> None:
    token = Token("s3cr3t-value", "GH_TOKEN")
    assert "s3cr3t" not in repr(token) and "s3cr3t" not in str(token) and "s3cr3t" not in f"{token}"
