"""Standard Webhooks signatures (https://www.standardwebhooks.com), and the message id.

Every request carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``. The key is
the secret's decoded bytes when it is written ``whsec_<base64>`` (as Standard Webhooks'
libraries and Svix issue them), otherwise the secret's own UTF-8 bytes. The secret is passed
in, used, and never kept in anything that is printed, logged or recorded.

A message id is derived from the endpoint and the event (its idempotency key when it has one,
which every clone of a Temporal run shares, else its sequence number), so a retry, a replay,
or a send again after a crash carries the same id and a receiver can drop repeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: ``whsec_<base64>`` decoded, else the text's bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the text is the key
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers; without a key, the id and timestamp alone (unsigned)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        out["webhook-signature"] = sign(key, msg_id, timestamp, body)
    return out


def message_id(endpoint: str, seq: int, idempotency_key: str | None) -> str:
    """The id every delivery of this event to ``endpoint`` carries: ``msg_`` and 32 hex."""
    basis = idempotency_key if idempotency_key else f"seq:{seq}"
    digest = hashlib.sha256(f"{endpoint}\0{basis}".encode()).hexdigest()
    return f"msg_{digest[:32]}"
