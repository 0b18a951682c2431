"""How events and projection rows cross the SQL boundary: as JSON text.

Event ``data`` is stored as JSON text and the reducer is always fed the decoded text, never the
caller's dict, so a live append and a rebuild see the very same values (tuples become lists,
integer keys become strings) and cannot drift. ``Table`` holds one projection table's SQL and
encodes and decodes its rows (JSON columns as text, the others as plain SQLite values).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from typing import Any

from wf.errors import StoreError
from wf.model import Event, NewEvent
from wf.store.damage import BadEvent
from wf.store.projections import COLUMNS, JSON_COLUMNS, PRIMARY_KEYS

# The columns of an event row, in the order ``event_of`` takes them.
EVENT_COLUMNS = "seq, stream, stream_version, type, ts, data, idempotency_key"
# What a plain (non-JSON) projection column can hold, and what a "flat" event's values are.
# An int beyond 64 bits passes the column check and fails the whole transaction when written:
# a price only absurd data pays.
SCALARS = frozenset({str, int, float, bool, type(None)})

# Strict, compact JSON; one encoder, since json.dumps with options builds one per call.
dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """``json.loads`` without its per-call overhead, which is most of the cost for the small
    objects events hold (it matters for a rebuild of a million events)."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)  # json.loads raises the error


def event_of(row: tuple[Any, ...]) -> Event:
    """The Event of a row of ``EVENT_COLUMNS``; BadEvent if its data is not JSON."""
    try:
        data = loads(row[5])
    except (ValueError, TypeError) as exc:
        raise BadEvent(row[0], row[3]) from exc
    return Event(row[0], row[1], row[2], row[3], row[4], data, row[6])


class Prepared:
    """A NewEvent with its data as stored (JSON text)."""

    __slots__ = ("event", "text", "flat")

    def __init__(self, event: NewEvent, text: str) -> None:
        self.event, self.text = event, text
        # One level of str keys and plain values: a shallow copy is what decoding would give.
        self.flat = all(k.__class__ is str and v.__class__ in SCALARS
                        for k, v in event.data.items())

    def decoded(self) -> dict[str, Any]:
        """A fresh copy of the data exactly as a read of the stored text returns it."""
        return dict(self.event.data) if self.flat else loads(self.text)


def prepare(batch: Sequence[NewEvent]) -> list[Prepared] | StoreError:
    """The batch's events with their data encoded, or the StoreError that rejects the batch
    (returned, not raised: the other batches of the transaction go on)."""
    out = []
    for ne in batch:
        if not isinstance(ne.stream, str) or not isinstance(ne.type, str):
            return StoreError(f"event stream and type must be strings: {ne!r:.120}")
        if not isinstance(ne.data, dict):
            return StoreError(f"event {ne.type!r} data must be a dict, "
                              f"not {type(ne.data).__name__}")
        try:
            out.append(Prepared(ne, dumps(ne.data)))
        except (TypeError, ValueError) as exc:
            return StoreError(f"event {ne.type!r} data is not JSON: {exc}")
    return out


class Table:
    """How one projection table's rows cross the SQL boundary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns = COLUMNS[name]
        self.key = PRIMARY_KEYS[name]
        self.json_columns = tuple(c for c in self.columns if (name, c) in JSON_COLUMNS)
        self.json_at = tuple(self.columns.index(c) for c in self.json_columns)
        self.plain = tuple(c for c in self.columns if (name, c) not in JSON_COLUMNS)
        self.values = operator.itemgetter(*self.columns)
        self.plain_values = operator.itemgetter(*self.plain)
        cols = ", ".join(self.columns)
        self.create = f"CREATE TABLE {name} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        self.select = f"SELECT {cols} FROM {name}"
        self.order = f" ORDER BY {', '.join(self.key)}"
        self.upsert = (f"INSERT OR REPLACE INTO {name} ({cols})"
                       f" VALUES ({', '.join('?' * len(self.columns))})")
        self.delete = f"DELETE FROM {name} WHERE " + " AND ".join(f"{k} = ?" for k in self.key)

    def encode(self, row: dict[str, Any]) -> list[Any]:
        values = list(self.values(row))
        for i in self.json_at:
            if values[i] is not None:
                values[i] = dumps(values[i])
        return values

    def check(self, row: dict[str, Any]) -> None:
        """Raise StoreError unless SQLite can store every plain column of ``row``."""
        if SCALARS.issuperset(map(type, self.plain_values(row))):
            return
        for col in self.plain:
            value = row[col]
            if not isinstance(value, str | int | float | type(None)):
                raise StoreError(f"projection column {self.name}.{col} cannot hold "
                                 f"{type(value).__name__} {value!r:.40}")

    def decode(self, values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(self.columns, values, strict=True))
        for col in self.json_columns:
            if row[col] is not None:
                row[col] = loads(row[col])
        return row

    def key_of(self, row: dict[str, Any]) -> Any:
        return row[self.key[0]] if len(self.key) == 1 else tuple(row[k] for k in self.key)


TABLES = {name: Table(name) for name in COLUMNS}
