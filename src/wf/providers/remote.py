"""Which forge a repository lives on: the remote's URL, then ``[provider]`` and CI variables.

wf reads the URL with ``git remote get-url`` (so ``insteadOf`` rewrites apply) and accepts every
form git does: scp-like ssh (``git@host:owner/repo.git``), ``ssh://git@host:2222/owner/repo.git``,
and https with or without ``.git`` and with embedded credentials, which are dropped here and never
logged. github.com and gitlab.com are known; any other host needs ``[provider] kind`` (and, when
the API is not at the usual place, ``api_url``). Inside GitLab CI, ``CI_SERVER_URL`` and
``CI_PROJECT_PATH`` say where the project is, and ``GITLAB_HOST`` names a self-hosted GitLab.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from wf.errors import ConfigError

# host -> (kind, API base URL)
KNOWN_HOSTS = {
    "github.com": ("github", "https://api.github.com"),
    "gitlab.com": ("gitlab", "https://gitlab.com"),
}
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^:/]+):(?P<path>(?!/).+)$")


@dataclass(frozen=True)
class RemoteUrl:
    """A remote URL reduced to what identifies a project: no credentials, no ``.git``."""

    host: str
    path: str  # "owner/repo" or "group/sub/project"
    port: int | None = None


@dataclass(frozen=True)
class ForgeTarget:
    """Where the PRs of this repository go: the forge's kind, its API, the project path, and the
    git remote that branches are pushed to."""

    kind: str
    api_url: str
    repo: str
    remote: str
    host: str  # the forge's web host, which tokens are looked up for

    @property
    def owner(self) -> str:
        return self.repo.rsplit("/", 1)[0]


def parse_remote_url(url: str) -> RemoteUrl | None:
    """The host and project path of ``url``, or None for a local path or ``file://`` URL."""
    url = url.strip()
    if "://" not in url:
        match = _SCP_LIKE.match(url)
        if match is None or "/" in match["host"]:
            return None  # a local path such as /srv/repo.git or ./repo
        return RemoteUrl(match["host"].lower(), _clean_path(match["path"]))
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file" or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return RemoteUrl(parts.hostname.lower(), _clean_path(parts.path), port)


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, for messages."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _clean_path(path: str) -> str:
    path = urllib.parse.unquote(path).strip("/")
    return path[:-4] if path.endswith(".git") else path


def resolve_target(*, kind: str | None, api_url: str | None, repo: str | None, remote: str,
                   remote_url: str | None, environ: Mapping[str, str]) -> ForgeTarget:
    """Combine the ``[provider]`` settings (each may be None), the remote's URL and the CI
    variables into one target; a missing piece is a :class:`ConfigError` saying what to set."""
    parsed = parse_remote_url(remote_url) if remote_url else None
    host = parsed.host if parsed else None
    ci_server = environ.get("CI_SERVER_URL") or None
    ci_host = urllib.parse.urlsplit(ci_server).hostname if ci_server else None
    gitlab_host = _host_of(environ.get("GITLAB_HOST") or "")
    if api_url and not host:
        host = urllib.parse.urlsplit(api_url).hostname
    if host is None and ci_host:
        host = ci_host
    known = KNOWN_HOSTS.get(host or "")
    if kind is None:
        if known:
            kind = known[0]
        elif host and host in (ci_host, gitlab_host):
            kind = "gitlab"
        else:
            where = f"the host {host}" if host else f"the remote {remote!r} ({_shown(remote_url)})"
            raise ConfigError(f"cannot tell which forge hosts {where}",
                              hint='set [provider] kind = "github" or "gitlab" (and api_url) '
                                   "in wf.toml")
    if api_url is None:
        api_url = _default_api_url(kind, host, known, ci_host, ci_server)
    project = repo or (parsed.path if parsed else None) or (
        environ.get("CI_PROJECT_PATH") if kind == "gitlab" else None)
    if not project or "/" not in project:
        raise ConfigError(f"cannot tell the project path from the remote {remote!r} "
                          f"({_shown(remote_url)})",
                          hint='set [provider] repo = "owner/name" in wf.toml')
    web_host = host or urllib.parse.urlsplit(api_url).hostname or ""
    return ForgeTarget(kind, api_url.rstrip("/"), project, remote, web_host)


def _default_api_url(kind: str, host: str | None, known: tuple[str, str] | None,
                     ci_host: str | None, ci_server: str | None) -> str:
    if known and known[0] == kind:
        return known[1]
    if kind == "gitlab" and ci_server and host == ci_host:
        return ci_server
    if host is None or kind not in ("github", "gitlab"):
        raise ConfigError(f"no API address for this {kind} forge",
                          hint="set [provider] api_url in wf.toml")
    # The conventions of self-hosted installs: GHES serves its API under /api/v3, GitLab at
    # the root (python-gitlab adds /api/v4).
    return f"https://{host}/api/v3" if kind == "github" else f"https://{host}"


def _host_of(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    return urllib.parse.urlsplit(value if "://" in value else f"https://{value}").hostname


def _shown(url: str | None) -> str:
    return redact_url(url) if url else "no URL"
