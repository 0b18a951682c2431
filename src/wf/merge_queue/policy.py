"""``[policy]``: what a branch may change before the merge queue admits it.

Rules are checked once, at admission, on what the branch would bring to the target (the diff
from their merge base). Deny rules come first (``forbidden_paths``, ``max_changed_files``,
``max_changed_lines``), then ``approval_paths``, which holds the branch for a person. A verdict
names the rule that fired; a denial is final, since running the same diff again cannot change it.

Path patterns are gitignore-like globs on repository-relative POSIX paths:

* ``*`` matches within one path segment, ``?`` one character (never ``/``), ``[a-z]``/``[!a-z]``
  one character of a set, ``\\`` makes the next character literal;
* ``**`` is any number of segments: ``**/*.lock``, ``.github/workflows/**``, ``src/**/gen``;
* a pattern without ``/`` (other than a trailing one) matches a name at any depth, like
  ``*.pem``; one with a ``/`` is anchored at the top (a leading ``/`` only anchors);
* a pattern that matches a directory matches everything under it, and a trailing ``/`` makes
  a pattern match directories only: ``build/`` is every file under any ``build`` directory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from wf.gitx import ChangedFile


class PolicyConfig(BaseModel):
    """``[policy]``: limits on what a branch may change. Empty means no limits."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    forbidden_paths: tuple[str, ...] = ()
    """Globs of paths no branch may change (added, modified, deleted, renamed from or to)."""

    approval_paths: tuple[str, ...] = ()
    """Globs of paths whose change needs a person's approval, e.g. ``.github/workflows/**``."""

    max_changed_lines: int | None = Field(None, ge=1)
    """Most lines (added plus deleted) one branch may change; binary files count none."""

    max_changed_files: int | None = Field(None, ge=1)
    """Most files one branch may change; a rename counts as one file."""

    @property
    def has_rules(self) -> bool:
        """Whether any rule is set: without one, every change is allowed unseen."""
        return bool(self.forbidden_paths or self.approval_paths
                    or self.max_changed_lines is not None or self.max_changed_files is not None)

    @field_validator("forbidden_paths", "approval_paths")
    @classmethod
    def _globs(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _compile(pattern)  # raises ValueError with the reason
        return patterns


@dataclass(frozen=True)
class ChangeSummary:
    """What a branch changes. ``files`` has one path per changed file (the new path of a
    rename); ``renamed_from`` the old paths of renames, which path rules also see."""

    files: tuple[str, ...]
    lines_added: int
    lines_deleted: int
    renamed_from: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the change touches: what path rules are checked against."""
        return self.files + self.renamed_from

    @property
    def changed_lines(self) -> int:
        return self.lines_added + self.lines_deleted

    @classmethod
    def from_diff(cls, changes: Iterable[ChangedFile]) -> ChangeSummary:
        """Summarise :meth:`wf.gitx.ObjectDb.diff_numstat` records; binary files count 0 lines."""
        changes = tuple(changes)
        return cls(
            files=tuple(c.path for c in changes),
            lines_added=sum(c.added or 0 for c in changes),
            lines_deleted=sum(c.deleted or 0 for c in changes),
            renamed_from=tuple(c.old_path for c in changes if c.old_path is not None),
        )


@dataclass(frozen=True)
class PolicyVerdict:
    """The outcome of :func:`evaluate`: ``rule`` is the ``[policy]`` field that fired and
    ``detail`` says why in one line (both None when allowed)."""

    decision: Literal["allow", "deny", "needs_approval"]
    rule: str | None = None
    detail: str | None = None


ALLOW = PolicyVerdict("allow")


def evaluate(policy: PolicyConfig, change: ChangeSummary) -> PolicyVerdict:
    """Check ``change`` against ``policy``: the first deny rule that fires, else approval, else
    allow. A limit is a maximum: exactly ``max_changed_lines`` lines is allowed."""
    hit = _describe_match(policy.forbidden_paths, change.paths)
    if hit:
        return PolicyVerdict("deny", "forbidden_paths", hit)
    limit = policy.max_changed_files
    if limit is not None and len(change.files) > limit:
        return PolicyVerdict("deny", "max_changed_files",
                             f"{len(change.files)} changed files, more than {limit}")
    limit = policy.max_changed_lines
    if limit is not None and change.changed_lines > limit:
        return PolicyVerdict("deny", "max_changed_lines",
                             f"{change.changed_lines} changed lines, more than {limit}")
    hit = _describe_match(policy.approval_paths, change.paths)
    if hit:
        return PolicyVerdict("needs_approval", "approval_paths", hit)
    return ALLOW


def _describe_match(patterns: Sequence[str], paths: Sequence[str]) -> str | None:
    """``changes a/b (matches a/**) and 2 more`` for the paths some pattern matches."""
    hits = [(path, pattern) for path in paths
            for pattern in [next((p for p in patterns if match_path(p, path)), None)] if pattern]
    if not hits:
        return None
    path, pattern = hits[0]
    more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
    return f"changes {path} (matches {pattern}){more}"


# --- globs -------------------------------------------------------------------------------


def match_path(pattern: str, path: str) -> bool:
    """Whether the glob ``pattern`` matches the repository-relative POSIX ``path`` (see the
    module docstring). An invalid pattern raises ValueError."""
    return _compile(pattern).fullmatch(path) is not None


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.strip("/"):
        raise ValueError(f"empty path pattern {pattern!r}")
    if pattern.startswith("!"):
        raise ValueError(f"negated pattern {pattern!r} is not supported (write \\! for a "
                         "literal !)")
    dir_only = pattern.endswith("/")
    body = pattern.strip("/") if pattern.startswith("/") else pattern.rstrip("/")
    anchored = pattern.startswith("/") or "/" in body
    segments = body.split("/")
    if "" in segments:
        raise ValueError(f"empty segment in path pattern {pattern!r}")
    regex = "" if anchored else "(?:[^/]+/)*"
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            regex += ".+" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(segment, pattern) + ("" if last else "/")
    # Matching a directory matches what it holds; a trailing "/" matches only directories.
    regex += "/.+" if dir_only else "(?:/.+)?"
    try:
        return re.compile(regex, re.DOTALL)
    except re.error as exc:
        raise ValueError(f"bad path pattern {pattern!r}: {exc}") from exc


def _segment_regex(segment: str, pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # "a**b" is "a*b", as in gitignore
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < len(segment):
                i += 1
            out.append(re.escape(segment[i]))
        elif ch == "[" and (end := _class_end(segment, i)) is not None:
            out.append(_class_regex(segment[i + 1:end]))
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _class_end(segment: str, start: int) -> int | None:
    """Index of the "]" closing the set opened at ``start``; a "]" first in the set is literal."""
    i = start + 1
    if i < len(segment) and segment[i] in "!^":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1
    end = segment.find("]", i)
    return end if end != -1 else None


def _class_regex(body: str) -> str:
    negated = body[:1] in ("!", "^")
    chars = "".join(ch if ch == "-" else re.escape(ch) for ch in body[negated:])
    return f"[^/{chars}]" if negated else f"[{chars}]"
