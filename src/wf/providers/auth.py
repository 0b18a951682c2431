"""Finding the forge token, first match wins, the way ``gh`` and ``glab`` find theirs.

GitHub: ``GH_TOKEN``, ``GITHUB_TOKEN``, then for hosts other than github.com
``GH_ENTERPRISE_TOKEN`` and ``GITHUB_ENTERPRISE_TOKEN``, then ``gh auth token --hostname HOST``
when ``gh`` is installed. GitLab: ``GITLAB_TOKEN``; inside GitLab CI a ``CI_JOB_TOKEN`` alone is
refused with a message, because a job token cannot create merge requests.

A :class:`Token` never shows its value in ``repr`` or ``str``, so logging one by mistake leaks
only where it came from.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from wf.errors import ForgeAuthError


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    source: str  # the variable or command it came from, for messages

    def __str__(self) -> str:
        return f"<token from {self.source}>"


def github_variables(host: str) -> tuple[str, ...]:
    if host == "github.com":
        return ("GH_TOKEN", "GITHUB_TOKEN")
    return ("GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN")


def github_token(host: str, environ: Mapping[str, str]) -> Token:
    names = github_variables(host)
    for name in names:
        if environ.get(name, "").strip():
            return Token(environ[name].strip(), name)
    from_gh = _gh_auth_token(host, environ)
    if from_gh is not None:
        return from_gh
    raise ForgeAuthError(f"no GitHub token for {host}: set {_either(names)}, "
                         f"or log in with `gh auth login --hostname {host}`")


def _gh_auth_token(host: str, environ: Mapping[str, str]) -> Token | None:
    gh = shutil.which("gh", path=environ.get("PATH"))
    if gh is None:
        return None
    try:  # the token comes back on a pipe, never through an argument
        proc = subprocess.run([gh, "auth", "token", "--hostname", host], capture_output=True,
                              text=True, timeout=15, env=dict(environ), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    if proc.returncode != 0 or not value:
        return None
    return Token(value, f"gh auth token --hostname {host}")


GITLAB_VARIABLES = ("GITLAB_TOKEN",)


def gitlab_token(host: str, environ: Mapping[str, str]) -> Token:
    for name in GITLAB_VARIABLES:
        if environ.get(name, "").strip():
            return Token(environ[name].strip(), name)
    if environ.get("CI_JOB_TOKEN"):
        raise ForgeAuthError(
            "only CI_JOB_TOKEN is set, and a CI job token cannot create or merge merge requests: "
            "set GITLAB_TOKEN (a project or personal access token with the api scope, as a "
            "masked CI/CD variable)")
    raise ForgeAuthError(f"no GitLab token for {host}: set GITLAB_TOKEN (a personal or project "
                         "access token with the api scope)")


def rejected(kind: str, host: str, token: Token, detail: str) -> ForgeAuthError:
    """The error for a token the forge refused (HTTP 401)."""
    names = GITLAB_VARIABLES if kind == "gitlab" else github_variables(host)
    return ForgeAuthError(f"{host} rejected the {kind} token from {token.source} ({detail}): "
                          f"set {_either(names)} to a valid token", status=401)


def _either(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
