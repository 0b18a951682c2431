"""One-line ``ConfigError`` messages for problems in wf.toml, ``[tool.wf]``, tasks files and
``WF_*`` variables.

Every message names the file and the key as they are written in it (``[agents.foo].command``,
``[[task]] #2 (id 'x').retry``), suggests the key meant when one is misspelt ("did you mean"),
shows how a list is written when a single value was given, and stays one line of sane length
whatever the input held. tomllib and pydantic errors are put in these words here.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from wf.errors import ConfigError

Loc = tuple[int | str, ...]
Where = Callable[[Loc, bool], str]  # (pydantic loc, loc names a table) -> "[retry].jitter"


_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_MAX_MESSAGE = 500
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def fail(message: str, *, hint: str | None = None) -> ConfigError:
    """A ConfigError whose message is one line of sane length, whatever the input held."""
    text = _LINE_BREAKS.sub(" ", message)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE - 3] + "..."
    return ConfigError(text, hint=None if hint is None else _LINE_BREAKS.sub(" ", hint))


def describe_errors(exc: ValidationError, where: Where,
                    model: type[BaseModel] | None = None) -> str:
    """The first error in words, an unknown key before anything else: a misspelt key is the
    cause of the "required key is missing" that comes with it."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    text = _describe(errors[0], where, model)
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _describe(error: Mapping[str, Any], where: Where, model: type[BaseModel] | None) -> str:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        table = where(loc[:-1], True)
        key = brief(str(loc[-1]))
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(model, loc[:-1]), n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"unknown key {key} in {table}{guess}" if table
                else f"unknown top-level key {key}{guess}")
    message = _lower_first(
        str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, "))
    if kind == "missing":
        message = "required key is missing"
    elif kind in ("tuple_type", "list_type") and loc and isinstance(loc[-1], str):
        value = error.get("input")
        example = f"[{json.dumps(value)}]" if isinstance(value, str | int | float) else "[...]"
        message = f"must be a list, e.g. {_key(loc[-1])} = {example} (got {brief(value)})"
    elif kind not in ("value_error", "assertion_error"):
        message += f" (got {brief(error.get('input'))})"
    return join(where(loc, False), message)


def _known_keys(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The keys the table at ``loc`` of ``model`` takes (a dict's keys, such as agent names,
    are stepped over), for "did you mean"."""
    for part in loc:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        if field is not None:
            model = _model_in(field.annotation)
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type: ``AgentConfig`` of ``dict[str, AgentConfig]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def join(place: str, message: str) -> str:
    return f"{place}: {message}" if place else message


def no_where(loc: Loc, table: bool) -> str:
    return ""


def toml_path(loc: Loc, data: Any, prefix: Loc = (), table: bool = False) -> str:
    """Where ``loc`` is, written as in the file: ``[agents.foo].command[0]``. Leading keys whose
    values are tables become the ``[...]`` header; ``table`` says ``loc`` itself is one."""
    tables, rest, cur = list(prefix), list(loc), data
    while (rest and isinstance(rest[0], str) and isinstance(cur, dict)
           and (table or len(rest) > 1) and isinstance(cur.get(rest[0]), dict)):
        cur = cur[rest[0]]
        tables.append(rest.pop(0))
    head = "[" + ".".join(_key(part) for part in tables) + "]" if tables else ""
    leaf = dotted(rest)
    return f"{head}.{leaf}" if head and leaf else head or leaf


def task_where(index: int, task_id: str | None) -> Where:
    label = f"[[task]] #{index}" + (f" (id {brief(task_id)})" if task_id else "")

    def where(loc: Loc, table: bool) -> str:
        leaf = dotted(loc)
        return f"{label}.{leaf}" if leaf else label
    return where


def dotted(parts: list[int | str] | Loc) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + _key(part)
    return out


def _key(key: Any) -> str:
    text = str(key)
    if _BARE_KEY.fullmatch(text) and len(text) <= 40:
        return text
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return brief(quoted, plain=True)


def brief(value: Any, *, plain: bool = False) -> str:
    """A short one-line rendering of a value for an error message."""
    if isinstance(value, dict):
        return "a table"
    text = value if plain else repr(value)
    text = _LINE_BREAKS.sub(" ", text)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_of(value: Any) -> str:
    kinds = {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
             int: "an integer", float: "a float"}
    return kinds.get(type(value), type(value).__name__)


_TOML_POS = re.compile(r"(?P<reason>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)"
                       r"|(?P<end>end of document))\)\s*", re.S)


def toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    """'at line L, column C: reason' from tomllib's 'Reason (at line L, column C)'."""
    text = str(exc)
    match = _TOML_POS.fullmatch(text)
    if match is None:
        return f": {_lower_first(text)}"
    where = "at end of document" if match["end"] else \
        f"at line {match['line']}, column {match['col']}"
    return f"{where}: {_lower_first(match['reason'])}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
