"""The delivery activity: one HTTP POST, reporting what happened, never raising.

``HttpSender`` keeps one connection per thread to its endpoint (keep-alive), opens it with
``connect_timeout`` and waits ``timeout`` for the answer. Only http and https (the config
checked it), TLS verified against the system's CAs, redirects never followed (a 3xx is a
failed attempt: a redirect could carry the signed body elsewhere). Every error (refused, reset,
timeout, TLS, a bad answer) becomes ``Result.error`` in words that name no secret and show the
URL redacted.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from wf.hooks.payload import Message, encode
from wf.hooks.signing import headers

USER_AGENT = "wf-hooks/1"


@dataclass(frozen=True)
class Result:
    status: int | None  # the HTTP status, None when no answer came
    error: str | None  # None on a 2xx
    retry_after: float | None = None  # seconds, from a Retry-After header
    duration: float = 0.0


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, OverflowError):
        return None


class HttpSender:
    """POSTs messages to one URL. Thread-safe: each thread has its own connection."""

    def __init__(self, url: str, *, key: bytes | None, connect_timeout: float,
                 timeout: float, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._auth = _basic_auth(parts.username, parts.password)
        self._key = key
        self._connect_timeout, self._timeout = connect_timeout, timeout
        self._context = context or (ssl.create_default_context() if self._https else None)
        self._local = threading.local()

    def send(self, msg: Message, *, now: float | None = None) -> Result:
        started = time.monotonic()
        body = encode(msg.body)
        stamp = int(time.time() if now is None else now)
        head = {"content-type": "application/json", "user-agent": USER_AGENT,
                **headers(self._key, msg.id, stamp, body)}
        if self._auth:
            head["authorization"] = self._auth
        for fresh in (False, True):  # a kept-alive connection the server closed: once more
            try:
                conn = self._connection(fresh)
                conn.request("POST", self._path, body=body, headers=head)
                resp = conn.getresponse()
                resp.read(65536)
                status = resp.status
                retry_after = retry_after_seconds(resp.getheader("retry-after"), time.time())
                if resp.will_close or resp.length:  # unread rest, or the server closes it
                    self.close()
                elapsed = time.monotonic() - started
                if 200 <= status < 300:
                    return Result(status, None, None, elapsed)
                error = f"HTTP {status} {resp.reason}".strip()
                if 300 <= status < 400:
                    error += " (redirects are not followed)"
                return Result(status, error[:300], retry_after, elapsed)
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if not fresh and getattr(self._local, "reused", False):
                    continue
                return Result(None, _words(exc), None, time.monotonic() - started)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.close()
                return Result(None, _words(exc), None, time.monotonic() - started)
        raise AssertionError("unreachable")

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        self._local.reused = conn is not None and not fresh
        if conn is not None and not fresh:
            return conn
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port,
                                               timeout=self._connect_timeout,
                                               context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port,
                                              timeout=self._connect_timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._timeout)  # connected: now the wait for the answer
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def _basic_auth(user: str | None, password: str | None) -> str | None:
    if user is None and password is None:
        return None
    import base64
    from urllib.parse import unquote

    pair = f"{unquote(user or '')}:{unquote(password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _words(exc: BaseException) -> str:
    """An error in a few words, without the URL (whose secrets the caller redacts)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection was closed without an answer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
