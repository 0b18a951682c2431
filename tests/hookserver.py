"""A webhook receiver on 127.0.0.1 for the hooks tests: it answers each request as told.

Answers, per path, first from the queue given with ``then(path, ...)``, else the path's
default (``answer(path, ...)``, else 200): ``"200"``, ``"500"``, ``"410"``, ``"301"``,
``"429:N"`` / ``"503:N"`` (with ``Retry-After: N``), ``"hang"`` (no answer until the server
stops) and ``"drop"`` (the connection is closed without an answer). Every request is kept in
``received`` (path, headers, body, the answer given), in the order it arrived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.defaults: dict[str, str] = {}
        self.plans: dict[str, deque[str]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds each request waits before its answer
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    plan = receiver.plans[self.path]
                    answer = plan.popleft() if plan else receiver.defaults.get(self.path, "200")
                    receiver.received.append({"path": self.path, "headers": dict(
                        (k.lower(), v) for k, v in self.headers.items()), "body": body,
                        "answer": answer, "ts": time.time()})
                if receiver.delay:
                    time.sleep(receiver.delay)
                if answer == "hang":
                    receiver.stopping.wait(60)
                    self.close_connection = True
                    return
                if answer == "drop":
                    self.close_connection = True
                    return
                code, _, after = answer.partition(":")
                self.send_response(int(code))
                if after:
                    self.send_header("Retry-After", after)
                if code == "301":
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, path: str, answer: str) -> None:
        with self.lock:
            self.defaults[path] = answer

    def then(self, path: str, *answers: str) -> None:
        with self.lock:
            self.plans[path].extend(answers)

    def requests(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.received if path is None or r["path"] == path]

    def accepted(self, path: str | None = None) -> list[dict]:
        """Requests answered 2xx, each with its body parsed."""
        return [{**r, "json": json.loads(r["body"])} for r in self.requests(path)
                if r["answer"].startswith("2")]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def verify(secret_key: bytes, headers: dict, body: bytes, tolerance: float = 300) -> bool:
    """Standard Webhooks verification, written from the spec (not wf's code): the HMAC-SHA256
    of "id.timestamp.body" in base64, one of the space-separated "v1,<sig>" values."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = base64.b64encode(hmac.new(secret_key, f"{msg_id}.{stamp}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
    return any(part.split(",", 1)[1] == expected for part in headers["webhook-signature"].split()
               if part.startswith("v1,"))
