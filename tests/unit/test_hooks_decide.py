"""The hooks' pure parts: which events an endpoint takes, the retry schedule, the verdicts,
the fold of the hooks stream, the signature (against an implementation written from the
Standard Webhooks spec here), URL redaction and the bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from wf.hooks import decide
from wf.hooks.config import DEFAULT_SCHEDULE, HookConfig, redact_url
from wf.hooks.events import check_pattern, matches
from wf.hooks.payload import message, slack_body, standard_body
from wf.hooks.signing import headers, message_id, secret_key
from wf.hooks.state import fold
from wf.model import Event


def hook(**kw) -> HookConfig:
    return HookConfig(**{"name": "h", "url": "https://example.test/h", **kw})


def ev(seq: int, type_: str, data: dict | None = None, stream: str = "task:t",
       ts: float = 1000.0, key: str | None = None) -> Event:
    return Event(seq, stream, seq, type_, ts, data or {}, key)


def test_patterns_take_types_globs_and_groups_but_not_hooks_own_events():
    assert matches(("attention",), "task.failed") and matches(("attention",), "queue.paused")
    assert matches(("finished",), "run.finished") and not matches(("finished",), "task.failed")
    assert matches(("task.*",), "task.succeeded") and not matches(("task.*",), "queue.landed")
    assert matches(("queue.landed",), "queue.landed")
    assert not matches(("*",), "hook.delivered") and not matches(("*",), "hook.failed")
    assert not matches(("hook.*",), "hook.endpoint_disabled")  # a glob never takes hooks'
    assert matches(("attention",), "hook.endpoint_disabled")
    disabled = {"endpoint": "h"}
    assert not decide.takes(hook(events=("attention",)), "hook.endpoint_disabled", disabled)
    assert decide.takes(hook(name="other", events=("attention",)), "hook.endpoint_disabled",
                        disabled)


@pytest.mark.parametrize("bad, words", [
    ("attenton", "did you mean 'attention'"), ("tsk.*", "matches no event type"),
    ("task.finished", "unknown event type or group"),
])
def test_unknown_patterns_are_refused_in_words(bad, words):
    with pytest.raises(ValueError, match=words):
        check_pattern(bad)


def test_the_default_schedule_then_the_dead_letter_queue():
    now, times = 0.0, []
    for attempt in range(1, 10):
        times.append(decide.next_try(DEFAULT_SCHEDULE, attempt, now, 500, None))
    assert times[:7] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert times[7:] == [None, None]


def test_retry_after_is_honoured_on_429_and_503_only_when_longer():
    s = DEFAULT_SCHEDULE
    assert decide.next_try(s, 1, 100.0, 429, 60.0) == 160.0
    assert decide.next_try(s, 1, 100.0, 503, 1.0) == 105.0
    assert decide.next_try(s, 1, 100.0, 500, 60.0) == 105.0  # not a 429/503: the schedule
    assert decide.next_try(s, 1, 0.0, 429, 1e9) == decide.MAX_RETRY_AFTER


def test_a_410_disables_and_keeps_the_event_for_later():
    f = decide.after_failure(hook(), seq=7, msg_id="m", attempt=1, now=10.0, status=410,
                             error="HTTP 410 Gone", retry_after=None, failing_since=None,
                             upto=6)
    assert f.disabled and f.next_at is None
    failed, disabled = f.events
    assert failed.data["dead"] is False and disabled.type == "hook.endpoint_disabled"
    assert "410" in disabled.data["reason"]


def test_failing_continuously_past_disable_after_disables():
    h = hook(disable_after="1h")
    early = decide.after_failure(h, seq=1, msg_id="m", attempt=2, now=3000.0, status=500,
                                 error="e", retry_after=None, failing_since=0.0, upto=0)
    late = decide.after_failure(h, seq=1, msg_id="m", attempt=3, now=3600.0, status=500,
                                error="e", retry_after=None, failing_since=0.0, upto=0)
    assert not early.disabled and late.disabled
    assert late.events[-1].data["reason"].startswith("failing continuously")
    never = decide.after_failure(hook(disable_after=0), seq=1, msg_id="m", attempt=2,
                                 now=1e9, status=500, error="e", retry_after=None,
                                 failing_since=0.0, upto=0)
    assert not never.disabled


def test_the_fold_rebuilds_pending_retries_dead_letters_and_disabled_state():
    events = [
        ev(10, "hook.endpoint_added", {"endpoint": "h", "from_seq": 9}, "hooks"),
        ev(14, "hook.delivered", {"endpoint": "h", "seqs": [11, 13], "upto": 11}, "hooks"),
        ev(15, "hook.failed", {"endpoint": "h", "seq": 12, "id": "a", "attempt": 1,
                               "status": 500, "error": "x", "next_at": 20.0, "dead": False,
                               "upto": 13}, "hooks", ts=15.0),
        ev(16, "hook.failed", {"endpoint": "h", "seq": 5, "id": "b", "attempt": 8,
                               "status": None, "error": "timed out", "next_at": None,
                               "dead": True}, "hooks", ts=16.0),
        ev(17, "hook.endpoint_disabled", {"endpoint": "h", "reason": "r"}, "hooks"),
    ]
    s = fold(events)["h"]
    assert (s.start, s.upto, s.delivered_total) == (9, 13, 2)
    assert [d.seq for d in s.retrying()] == [12] and s.retrying()[0].next_at == 20.0
    assert [d.seq for d in s.dead()] == [5] and s.disabled == "r"
    assert s.failing_since == 15.0
    s = fold([*events, ev(18, "hook.endpoint_enabled", {"endpoint": "h"}, "hooks"),
              ev(19, "hook.replayed", {"endpoint": "h", "seqs": [5]}, "hooks", ts=19.0)])["h"]
    assert s.disabled is None and s.dead() == []
    assert {(d.seq, d.attempts) for d in s.retrying()} == {(12, 1), (5, 0)}


def _spec_signature(key: bytes, msg_id: str, stamp: int, body: bytes) -> str:
    mac = hmac.new(key, msg_id.encode() + b"." + str(stamp).encode() + b"." + body,
                   hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_signatures_match_the_standard_webhooks_scheme():
    raw = b"\x00\x01secret-bytes\xff"
    whsec = "whsec_" + base64.b64encode(raw).decode()
    body = b'{"type":"task.failed"}'
    h = headers(secret_key(whsec), "msg_1", 1700000000, body)
    assert h["webhook-id"] == "msg_1" and h["webhook-timestamp"] == "1700000000"
    assert h["webhook-signature"] == _spec_signature(raw, "msg_1", 1700000000, body)
    plain = headers(secret_key("just text"), "msg_1", 1700000000, body)
    assert plain["webhook-signature"] == _spec_signature(b"just text", "msg_1", 1700000000,
                                                         body)
    assert "webhook-signature" not in headers(None, "msg_1", 1, body)


def test_a_message_keeps_its_id_whatever_the_try_and_differs_per_endpoint():
    e = ev(3, "task.failed", {"kind": "x"}, key="task.failed:t:1")
    assert message(e, "a", "standard", "r").id == message(e, "a", "slack", "r").id
    assert message(e, "a", "standard", "r").id != message(e, "b", "standard", "r").id
    assert message_id("a", 3, None) == message_id("a", 3, None) != message_id("a", 4, None)
    # the key, not the seq, when there is one: every clone of a Temporal run agrees
    assert message_id("a", 3, "k") == message_id("a", 99, "k")


def test_bodies_standard_and_slack():
    e = ev(5, "task.failed", {"n": 1, "kind": "agent_error", "error": "boom", "why": "w"})
    body = standard_body(e, "repo")
    assert {k: body[k] for k in ("type", "seq", "stream", "task", "repo")} == {
        "type": "task.failed", "seq": 5, "stream": "task:t", "task": "t", "repo": "repo"}
    assert body["data"] == e.data and body["timestamp"].endswith("Z")
    chat = slack_body(e, "repo")
    assert set(chat) == {"text", "blocks"} and chat["text"].startswith("wf (repo): t: failed")
    assert chat["blocks"] == [{"type": "section", "text": {"type": "mrkdwn",
                                                            "text": chat["text"]}}]


def test_urls_are_redacted_and_only_http_and_https_accepted():
    assert redact_url("https://user:pw@h.test:8443/p/a?token=s3cret#f") == \
        "https://***@h.test:8443/p/a?***"
    assert redact_url("http://h.test/p") == "http://h.test/p"
    for bad in ("ftp://h.test/x", "h.test/x", "https:///x", "http://h .test/x"):
        with pytest.raises(ValidationError):
            hook(url=bad)
    with pytest.raises(ValidationError, match="never the secret itself"):
        hook(secret_env="whsec_abc+/=")
    with pytest.raises(ValidationError, match="either url or sink"):
        HookConfig(name="x")
