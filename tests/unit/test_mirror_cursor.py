"""The Temporal mirror's cursor file (``engine.Mirror``): kept beside the log, written by
rename, so two mirrors of one process (the in-process worker's and the engine's, in the
contract suite) never fail on each other's temporary file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("temporalio")

from wf.store import SqliteEventStore  # noqa: E402
from wf.temporal.engine import Mirror  # noqa: E402


class Handle:  # what Mirror reads of a workflow handle for its cursor: the workflow's id
    id = "wf.repo"


def test_two_mirrors_of_one_process_save_their_cursors_at_once(tmp_path: Path) -> None:
    stores = [SqliteEventStore(tmp_path / "wf.db") for _ in range(2)]
    mirrors = [Mirror(store, Handle(), None) for store in stores]  # type: ignore[arg-type]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def save(mirror: Mirror) -> None:
        start.wait()
        try:
            for since in range(1, 301):
                mirror._save_since(since)
        except BaseException as exc:  # noqa: BLE001  (reported by the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(m,)) for m in mirrors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []
    assert mirrors[0]._since() == 300
    assert not list(tmp_path.glob("*.tmp"))
