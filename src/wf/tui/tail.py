"""``tail -f`` of an attempt's log file: each read returns what was appended since the last.

No textual here; the dashboard calls ``read_new`` from a worker thread.
"""

from __future__ import annotations

from pathlib import Path

FIRST_READ_MAX = 256 * 1024  # a huge log opens at its end; `wf logs` has all of it


class LogTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0

    def read_new(self) -> str:
        """The text appended since the last call ('' when none, or no file yet). A file that
        shrank was rotated: it is read again from its start."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if size < self.pos:
                    self.pos = 0
                if self.pos == 0 and size > FIRST_READ_MAX:
                    self.pos = size - FIRST_READ_MAX
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return ""
        # Keep a partial last line (and a partial UTF-8 sequence) for the next read.
        cut = chunk.rfind(b"\n") + 1
        self.pos += cut
        return chunk[:cut].decode("utf-8", "replace")
