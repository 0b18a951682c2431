"""Pure rules of the worktree pool: the ``pool`` stream's reducer and the pool's decisions.

No I/O: the keeper (``keeper.py``) passes rows, facts its activities measured (a setup key, a
size, whether a process is alive) and ``now``; these functions answer. A row is one pooled
worktree ("slot"), named ``p<k>`` at ``<worktree_root>/.wf-pool-<k>``.

States: ``preparing`` (checked out and set up by ``owner``) → ``ready`` (idle, detached at
``base``, nothing in it but tracked files and the ``keep`` folders) → ``taking`` (being handed
to ``task``) → ``taken`` (the task's worktree) → ``returning`` (``wf clean`` resets it) →
``ready``; ``creating`` is a task's new worktree made in a slot when none was ready; any
state → ``removing`` → gone. Only ``ready`` slots are ever handed out, so a slot whose
preparation a crash cut short is never given to a task: the next keeper finishes or removes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wf.model import Event

POOL_STREAM = "pool"
SLOT_DIR_PREFIX = ".wf-pool-"
IDLE = frozenset({"preparing", "ready"})  # slots no task holds
HELD = frozenset({"taking", "creating", "taken", "returning"})  # a task's worktree
BUSY = frozenset({"preparing", "taking", "creating", "returning", "removing"})  # a step runs

COLUMNS = ("slot", "path", "state", "task", "base", "key", "size", "owner", "created_ts",
           "updated_ts", "uses", "note")


def slot_dir(slot: str) -> str:
    """The folder name of slot ``p<k>``: ``.wf-pool-<k>`` (a task id never starts with '.')."""
    return SLOT_DIR_PREFIX + slot.removeprefix("p")


def is_slot_path(path: str) -> bool:
    """Whether a worktree at ``path`` is a pool slot's folder (with the pool on, every task's
    worktree is one)."""
    return path.rstrip("/").rsplit("/", 1)[-1].startswith(SLOT_DIR_PREFIX)


def apply_pool(rows: dict[str, dict[str, Any]], e: Event) -> set[str]:
    """Fold one ``pool.*`` event into ``rows`` (slot → row); return the slots it touched."""
    d, t = e.data, e.type
    slot = d.get("slot")
    if not isinstance(slot, str):
        return set()
    row = rows.get(slot)
    if t in ("pool.prepare_requested", "pool.create_requested"):
        row = rows[slot] = dict.fromkeys(COLUMNS)
        row.update(slot=slot, path=d["path"], created_ts=e.ts, uses=0,
                   state="preparing" if t == "pool.prepare_requested" else "creating",
                   task=d.get("task"), base=d.get("base"), owner=d.get("owner"))
    elif row is None:
        return set()
    elif t == "pool.removed":
        del rows[slot]
        return {slot}
    elif t == "pool.prepared":
        row.update(state="ready", base=d.get("base"), key=d.get("key"), size=d.get("size"),
                   owner=None, note=None)
    elif t == "pool.take_requested":
        row.update(state="taking", task=d["task"], owner=d.get("owner"))
    elif t == "pool.taken":
        row.update(state="taken", task=d["task"], base=d.get("base"), owner=None,
                   uses=(row["uses"] or 0) + 1)
    elif t == "pool.setup_started":  # keep folders are half-made until setup_done
        row.update(key=None)
    elif t == "pool.setup_done":
        row.update(key=d.get("key"))
    elif t == "pool.return_requested":
        row.update(state="returning", owner=d.get("owner"))
    elif t == "pool.returned":
        row.update(state="ready", task=None, base=d.get("base"), key=d.get("key"),
                   size=d.get("size"), owner=None, note=None)
    elif t == "pool.remove_requested":
        row.update(state="removing", owner=d.get("owner"), note=d.get("reason"))
    elif t == "pool.measured":
        row.update(size=d.get("size"))
    else:
        return set()
    row["updated_ts"] = e.ts
    return {slot}


# -- decisions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Want:
    """What a task needs: its start commit and the setup key of its inputs there (None when no
    ``setup_inputs`` are named: setup then always runs again)."""

    commit: str | None
    key: str | None


def choose_slot(rows: Mapping[str, Mapping[str, Any]], want: Want) -> str | None:
    """The ready slot to hand a task, or None (the task gets a new worktree). Any ready slot
    fits, since moving it to the task's commit writes only the files that differ; preferred
    are one whose setup is valid for the task's inputs, then one already at its commit (no
    file written at all), then the one idle longest."""
    ready = [r for r in rows.values() if r["state"] == "ready"]
    if not ready:
        return None

    def rank(r: Mapping[str, Any]) -> tuple[bool, bool, float, str]:
        valid = want.key is not None and r["key"] == want.key
        return (not valid, r["base"] != want.commit, r["updated_ts"] or 0.0, r["slot"])

    return min(ready, key=rank)["slot"]


def setup_needed(slot_key: str | None, wanted_key: str | None) -> bool:
    """Whether the setup command must run in a pooled worktree: unless it already ran there for
    exactly these inputs and this command (the key covers both)."""
    return wanted_key is None or slot_key != wanted_key


def key_after_return(slot_key: str | None, key_at_tip: str | None) -> str | None:
    """The setup key a returned worktree keeps: the one its setup ran for, unless the task
    changed the setup inputs (then the keep folders may have followed: run setup again)."""
    return slot_key if slot_key is not None and slot_key == key_at_tip else None


def next_slot(rows: Mapping[str, Mapping[str, Any]], on_disk: Iterable[str]) -> str:
    """A new slot's name: the smallest ``p<k>`` that neither a row nor a folder uses."""
    used = set(rows) | {"p" + name.removeprefix(SLOT_DIR_PREFIX) for name in on_disk}
    k = 1
    while f"p{k}" in used:
        k += 1
    return f"p{k}"


def idle_size(rows: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(r["size"] or 0 for r in rows.values() if r["state"] in IDLE)


def _estimate(rows: Mapping[str, Mapping[str, Any]]) -> int:
    """A new slot's likely size: the largest idle one measured, else the largest of any (a
    task's holds its work too); 0 before any was measured."""
    idle = [r["size"] or 0 for r in rows.values() if r["state"] in IDLE]
    return max(idle or [r["size"] or 0 for r in rows.values()], default=0)


def to_prepare(rows: Mapping[str, Mapping[str, Any]], target: int,
               max_disk: int | None, *, held_come_back: bool = False) -> int:
    """How many new slots to prepare now so that ``target`` are idle, within ``max_disk``.
    ``held_come_back`` (``return_on_success``): the slots tasks hold count too, since a
    task gives its slot back as soon as it succeeds; preparing more meanwhile would only
    have returned slots thrown away."""
    counted = IDLE | HELD if held_come_back else IDLE
    idle = sum(1 for r in rows.values() if r["state"] in counted)
    missing = max(0, target - idle)
    if max_disk is None or missing == 0:
        return missing
    room, each = max_disk - idle_size(rows), _estimate(rows)
    if each == 0:
        return min(missing, 1) if room > 0 else 0  # measure one before preparing more
    return max(0, min(missing, room // each))


def evict_for_cap(rows: Mapping[str, Mapping[str, Any]], max_disk: int | None) -> list[str]:
    """Ready slots to remove, idle longest first, until the idle ones fit in ``max_disk``."""
    if max_disk is None:
        return []
    total, out = idle_size(rows), []
    for r in sorted((r for r in rows.values() if r["state"] == "ready"),
                    key=lambda r: (r["updated_ts"] or 0.0, r["slot"])):
        if total <= max_disk:
            break
        out.append(r["slot"])
        total -= r["size"] or 0
    return out


def give_back(rows: Mapping[str, Mapping[str, Any]], slot: str, target: int,
              max_disk: int | None) -> str:
    """What ``wf clean`` does with a task's slot: ``"return"`` it to the pool after a reset
    when fewer than ``target`` are ready and it fits in ``max_disk``, else ``"remove"`` it.
    Slots still being prepared do not count: a returned slot is set up already, so the pool
    may hold one more idle slot for a while rather than throw a set-up one away."""
    ready = [r for r in rows.values() if r["state"] == "ready" and r["slot"] != slot]
    if len(ready) >= target:
        return "remove"
    size = rows[slot]["size"] or 0
    if max_disk is not None and idle_size(rows) + size > max_disk:
        return "remove"
    return "return"


def holder(rows: Mapping[str, Mapping[str, Any]], task: str) -> Mapping[str, Any] | None:
    """The slot a task holds (being handed, created, its worktree, or being given back)."""
    return next((r for r in rows.values() if r["task"] == task and r["state"] in HELD), None)


def stale(row: Mapping[str, Any], owner_alive: bool) -> bool:
    """Whether a step on a slot was cut short: it is in a busy state and the process that took
    the step is gone (``owner_alive`` is the keeper's look at that pid and start time)."""
    return row["state"] in BUSY and not owner_alive


def recovery(row: Mapping[str, Any]) -> str:
    """What the next keeper does with a stale slot: ``prepare`` again (the checkout and setup
    are idempotent), ``return`` again, ``remove`` again; a task's slot being taken or created
    (``wait``) is finished by that task's next ``ensure``."""
    return {"preparing": "prepare", "returning": "return", "removing": "remove"}.get(
        row["state"], "wait")
