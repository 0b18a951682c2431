"""A model API that takes K requests at once: ``POST /v1/messages`` in Anthropic's shape, for
the tests and the bench of adaptive parallelism (issue 17).

Up to ``slots`` requests are admitted at a time; each admitted one is held ``hold`` seconds
(the model call) and answered 200 with one assistant message and its usage. A request that
finds every slot taken is answered at once with HTTP 429, Anthropic's ``rate_limit_error``
body and a ``retry-after: N`` header (whole seconds, as HTTP says). Every answer is kept in
``served`` (when, admitted or not, how many were in flight), so a test can check the
provider's side and a bench can report it.

``with LimitedModel(slots=2, hold=2.0) as model:`` starts it on 127.0.0.1 (``model.url``); a
held request waits on an event, so leaving the ``with`` (or ``stop()``) answers every held
request at once instead of waiting out its ``hold``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from stub_server import Reply, StubServer


@dataclass(frozen=True)
class Served:
    ts: float
    admitted: bool
    in_flight: int  # admitted requests in flight once this one was counted


class LimitedModel(StubServer):
    def __init__(self, *, slots: int, hold: float, retry_after: int = 1) -> None:
        super().__init__()
        self.slots, self.hold, self.retry_after = slots, hold, retry_after
        self.in_flight = 0
        self.served: list[Served] = []
        self.stopping = threading.Event()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        super().__exit__(*exc)

    def stop(self) -> None:
        """Answer every held request now (a cancelled test or bench does not wait them out)."""
        self.stopping.set()

    @property
    def rejected(self) -> int:
        return sum(1 for s in self.served if not s.admitted)

    @property
    def peak(self) -> int:
        return max((s.in_flight for s in self.served if s.admitted), default=0)

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if method != "POST" or path.split("?")[0] != "/v1/messages":
            return Reply(404, {"type": "error", "error": {"type": "not_found_error",
                                                          "message": "stub"}})
        with self._lock:
            admitted = self.in_flight < self.slots
            if admitted:
                self.in_flight += 1
            self.served.append(Served(time.time(), admitted, self.in_flight))
        if not admitted:
            return Reply(429, {"type": "error", "error": {
                "type": "rate_limit_error",
                "message": f"stub: more than {self.slots} requests at once"}},
                headers={"retry-after": str(self.retry_after)})
        try:
            self.stopping.wait(self.hold)  # the model thinking; cut short by stop()
        finally:
            with self._lock:
                self.in_flight -= 1
        return Reply(200, {
            "id": f"msg_{len(self.served)}", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "stop_reason": "end_turn", "stop_sequence": None,
            "content": [{"type": "text", "text": "Done: the note is written."}],
            "usage": {"input_tokens": 100, "output_tokens": 20,
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})
