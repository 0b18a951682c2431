"""Engines: the one place an engine is built from ``[engine] kind``.

``base.py`` defines the ``Engine`` protocol; ``local.py`` is the engine on one machine,
``wf.temporal`` (the optional extra ``wf[temporal]``) the one on a Temporal server. The
decisions both interpreters share are ``decide.py``, ``schedule.py``, ``attempt_plan.py`` and
``signal_rules.py``; the side effects they ask for are ``activities.py``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wf.engine.base import Clock, Engine
    from wf.repository import Repo


def build_engine(repo: Repo, *, clock: Clock | None = None, rng: random.Random | None = None,
                 environ: Mapping[str, str] | None = None) -> Engine:
    """The engine ``[engine] kind`` names (the config validated the kind already)."""
    kind = repo.config.engine.kind
    if kind == "local":
        from wf.engine.local import LocalEngine

        return LocalEngine(repo, clock=clock, rng=rng, environ=environ)
    if kind == "temporal":
        from wf.temporal import require

        require()
        from wf.temporal.engine import TemporalEngine

        return TemporalEngine(repo, clock=clock, rng=rng, environ=environ)
    raise AssertionError(f"engine kind {kind!r} passed validation but has no builder")
