"""Forge detection: every remote URL form git accepts, [provider] settings and CI variables."""

from __future__ import annotations

import pytest

from wf.errors import ConfigError
from wf.providers.remote import RemoteUrl, parse_remote_url, redact_url, resolve_target


@pytest.mark.parametrize(("url", "expected"), [
    ("git@github.com:octo/demo.git", RemoteUrl("github.com", "octo/demo")),
    ("git@github.com:octo/demo", RemoteUrl("github.com", "octo/demo")),
    ("github.com:octo/demo.git", RemoteUrl("github.com", "octo/demo")),
    ("ssh://git@gitlab.example.com:2222/grp/sub/proj.git",
     RemoteUrl("gitlab.example.com", "grp/sub/proj", 2222)),
    ("ssh://git@github.com/octo/demo.git", RemoteUrl("github.com", "octo/demo")),
    ("https://github.com/octo/demo.git", RemoteUrl("github.com", "octo/demo")),
    ("https://github.com/octo/demo", RemoteUrl("github.com", "octo/demo")),
    ("https://github.com/octo/demo/", RemoteUrl("github.com", "octo/demo")),
    ("https://x-access-token:ghp_SECRET@github.com/octo/demo.git",
     RemoteUrl("github.com", "octo/demo")),
    ("https://oauth2:glpat-SECRET@gitlab.com/grp/sub/deeper/proj.git",
     RemoteUrl("gitlab.com", "grp/sub/deeper/proj")),
    ("https://GitHub.COM/octo/demo.git", RemoteUrl("github.com", "octo/demo")),
    ("http://127.0.0.1:8080/gitlab/grp/proj.git", RemoteUrl("127.0.0.1", "gitlab/grp/proj", 8080)),
    ("/srv/git/demo.git", None),
    ("./demo.git", None),
    ("file:///srv/git/demo.git", None),
])
def test_remote_url_forms(url: str, expected: RemoteUrl | None) -> None:
    assert parse_remote_url(url) == expected


def test_embedded_credentials_are_dropped_from_what_is_shown() -> None:
    assert redact_url("https://user:ghp_SECRET@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"


def target(url: str | None, env: dict[str, str] | None = None, **cfg: str):
    return resolve_target(kind=cfg.get("kind"), api_url=cfg.get("api_url"),
                          repo=cfg.get("repo"), remote="origin", remote_url=url,
                          environ=env or {})


def test_github_com_and_gitlab_com_are_known() -> None:
    gh = target("git@github.com:octo/demo.git")
    assert (gh.kind, gh.api_url, gh.repo, gh.host, gh.owner) == (
        "github", "https://api.github.com", "octo/demo", "github.com", "octo")
    gl = target("https://gitlab.com/grp/sub/proj.git")
    assert (gl.kind, gl.api_url, gl.repo) == ("gitlab", "https://gitlab.com", "grp/sub/proj")


def test_github_enterprise_needs_the_kind_and_defaults_to_api_v3() -> None:
    with pytest.raises(ConfigError, match="cannot tell which forge hosts the host ghe.corp"):
        target("git@ghe.corp:team/app.git")
    ghes = target("git@ghe.corp:team/app.git", kind="github")
    assert (ghes.api_url, ghes.host) == ("https://ghe.corp/api/v3", "ghe.corp")


def test_self_hosted_gitlab_from_config_gitlab_host_or_ci() -> None:
    url = "ssh://git@git.corp:2222/platform/tools/app.git"
    assert target(url, kind="gitlab").api_url == "https://git.corp"
    assert target(url, {"GITLAB_HOST": "git.corp"}).kind == "gitlab"
    ci = target(url, {"CI_SERVER_URL": "https://git.corp:8443", "CI_PROJECT_PATH": "x/y"})
    assert (ci.kind, ci.api_url, ci.repo) == ("gitlab", "https://git.corp:8443",
                                              "platform/tools/app")
    # no usable remote (a local path): the CI variables say where the project is
    local = target("/builds/app.git", {"CI_SERVER_URL": "https://git.corp",
                                       "CI_PROJECT_PATH": "platform/tools/app"})
    assert (local.kind, local.api_url, local.repo) == ("gitlab", "https://git.corp",
                                                       "platform/tools/app")


def test_explicit_settings_win_over_the_remote() -> None:
    t = target("/srv/repo.git", kind="github", api_url="http://127.0.0.1:9/api/v3/",
               repo="octo/other")
    assert (t.kind, t.api_url, t.repo, t.host) == ("github", "http://127.0.0.1:9/api/v3",
                                                   "octo/other", "127.0.0.1")


def test_an_unusable_remote_names_what_to_set_without_its_credentials() -> None:
    with pytest.raises(ConfigError) as err:
        target("https://me:hunter2@forge.corp/a/b.git")
    assert "hunter2" not in err.value.message and "kind" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="project path"):
        target("/srv/repo.git", kind="github", api_url="https://ghe.corp/api/v3")


def test_the_remote_is_read_with_insteadof_rewrites_applied(repo) -> None:
    from helpers import git

    from wf.config import ProviderConfig
    from wf.providers import target_for

    git(repo, "config", "url.git@gitlab.com:.insteadOf", "work:")
    git(repo, "remote", "add", "origin", "work:grp/sub/proj.git")
    t = target_for(repo, ProviderConfig(), {})
    assert (t.kind, t.repo, t.remote) == ("gitlab", "grp/sub/proj", "origin")
    with pytest.raises(ConfigError, match="no remote 'upstream'"):
        target_for(repo, ProviderConfig(remote="upstream"), {})
