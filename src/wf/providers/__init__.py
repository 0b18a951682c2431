"""Forges: GitHub, GitLab, and any other a plugin adds through the ``wf.providers`` entry points.

An entry point names a :class:`~wf.providers.base.ForgeFactory`: ``connect(target, environ)``
returning a :class:`~wf.providers.base.Forge`. wf's own are ``github`` and ``gitlab``; a Gitea or
Bitbucket provider is a package declaring, in its pyproject.toml::

    [project.entry-points."wf.providers"]
    gitea = "wf_gitea:connect"

and ``[provider] kind = "gitea"`` in wf.toml. Nothing here imports PyGithub or python-gitlab;
the chosen provider does, when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from wf import gitx
from wf.errors import ConfigError
from wf.providers.remote import ForgeTarget, resolve_target

if TYPE_CHECKING:
    from wf.config import ProviderConfig
    from wf.providers.base import Forge, ForgeFactory

GROUP = "wf.providers"


def factory(kind: str) -> ForgeFactory:
    """The factory registered for ``kind``; an unknown kind is a config error listing the
    known ones."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in found:
        raise ConfigError(f"unknown provider kind {kind!r}; known: {', '.join(sorted(found))}",
                          hint="install the package that provides it, or fix [provider] kind")
    try:
        return found[kind].load()
    except Exception as exc:  # a broken plugin is the plugin's bug, said in one line
        raise ConfigError(f"provider {kind!r} failed to load: {type(exc).__name__}: {exc}") from exc


def target_for(root: Path, cfg: ProviderConfig, environ: Mapping[str, str]) -> ForgeTarget:
    """The forge target of the repository at ``root``, from its remote's URL and ``cfg``."""
    url = gitx.remote_url(root, cfg.remote)
    if url is None and not (cfg.kind and cfg.api_url and cfg.repo):
        raise ConfigError(f"the repository has no remote {cfg.remote!r}",
                          hint="add it with `git remote add`, or set [provider] remote")
    return resolve_target(kind=cfg.kind, api_url=cfg.api_url, repo=cfg.repo, remote=cfg.remote,
                          remote_url=url, environ=environ)


def connect(root: Path, cfg: ProviderConfig, environ: Mapping[str, str]) -> Forge:
    """Detect the forge of ``root`` and build its provider, token included."""
    build = factory(cfg.kind) if cfg.kind else None  # a mistyped kind is the error to show
    target = target_for(root, cfg, environ)
    return (build or factory(target.kind))(target, environ)
