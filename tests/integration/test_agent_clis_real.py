"""The real agent CLIs (tests/real_clis.py: installed by .ci/run) run as wf's agents against
stub model APIs on 127.0.0.1, in real worktrees: what every CLI must do, parametrised over
the CLIs with what each is expected to show, and the one test specific to Gemini CLI.
Claude Code's own tests are in test_claude_code.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import git
from real_clis import REAL_CLIS, cli_env, each, run_real
from runwf import events, status, wf


@pytest.fixture
def stub(cli):
    with REAL_CLIS[cli].stub() as server:
        yield server


@pytest.fixture
def env(cli, stub, tmp_path):
    return cli_env(cli, stub, tmp_path / "home")


class _Matcher:
    """Compares equal to what ``matches`` accepts: lets one table say "exactly this", "any" or
    "containing this" with ``==``."""

    def __init__(self, matches, text: str) -> None:
        self.matches, self.text = matches, text

    def __eq__(self, other: object) -> bool:
        return self.matches(other)

    __hash__ = object.__hash__  # a constant of the tables (dataclass defaults must hash)

    def __repr__(self) -> str:
        return self.text


ANY = _Matcher(lambda other: True, "ANY")
POSITIVE = _Matcher(lambda other: isinstance(other, int | float) and other > 0, "POSITIVE")


def containing(part: str) -> _Matcher:
    """Equal to a string holding ``part``, or to a list with ``part`` among its items."""
    return _Matcher(lambda other: part in other, f"containing({part!r})")


@dataclass(frozen=True)
class Wrote:
    """What a CLI's run of the prompt "<cli> note" shows (ANY: not checked)."""
    note: Any  # notes/<cli>-note.txt as wf committed it
    usage: tuple[Any, Any]  # the task's (tokens, cost_usd)
    tools: Any = ANY  # the names of its agent.tool events
    inputs: Any = ANY  # their inputs
    messages: Any = ANY  # the texts of its agent.message events
    session: bool = True  # whether it reports a session
    raw: str = '{"type"'  # what `wf logs` must not show of the CLI's raw output


# (Claude Code's run, through `wf run -p`, is in test_claude_code.py.)
@pytest.mark.parametrize("cli, wrote", each(
    # Codex and Gemini CLI: two requests of 100 in, 20 out.
    ("codex", Wrote("written for: codex-note", (240, ANY), ["shell"],
                    messages=containing("Done: the note is written."))),
    ("gemini", Wrote("written for: gemini note", (240, ANY), ["write_file"])),
    ("opencode", Wrote(containing("written for:"), (POSITIVE, POSITIVE), containing("write"))),
    ("aider", Wrote("written for: aider-note", (2450, pytest.approx(0.0073, abs=0.0001)),
                    inputs=["notes/aider-note.txt"], session=False,
                    raw="Applied edit")),  # shown as → edit PATH
))
def test_the_cli_writes_a_file_that_wf_commits(repo, env, stub, cli, wrote):
    proc = run_real(repo, env, cli, stub, f"{cli} note")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done"
    assert (row["tokens"], row["cost_usd"]) == wrote.usage
    assert git(repo, "show", f"wf/t1:notes/{cli}-note.txt") == wrote.note
    sessions = [s["data"]["session_id"] for s in events(repo, "agent.session")]
    assert sessions == ([row["session_id"]] if wrote.session else [])
    tools = events(repo, "agent.tool")
    assert [t["data"]["name"] for t in tools] == wrote.tools
    assert [t["data"]["input"] for t in tools] == wrote.inputs
    assert [m["data"]["text"] for m in events(repo, "agent.message")] == wrote.messages
    assert wrote.raw not in wf(repo, "logs", "t1").stdout


@pytest.mark.parametrize("cli, names", each(
    ("claude", ["ANTHROPIC_API_KEY"]), ("codex", ["OPENAI_API_KEY"]),
    ("gemini", ["GEMINI_API_KEY"]), ("opencode", ["API key"]),
    ("aider", ["AuthenticationError", "API key"]),
))
def test_an_auth_error_is_not_retried_and_says_what_to_set(repo, env, stub, cli, names):
    proc = run_real(repo, env, cli, stub, f"secret {cli} note [fail 401 x99]")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["state"], row["attempts"], row["last_failure_kind"]) == \
        ("failed", 1, "config_error")
    for name in names:
        assert name in row["last_error"]
    assert "\n" not in row["last_error"]
    assert "forge-secret" not in json.dumps(events(repo))


@pytest.mark.parametrize("cli, marker, retry_after", each(
    # Two 429s with retry-after 1: Claude Code's own retry takes the second one, then gives up.
    ("claude", "[fail 429 x2 after 1]", 1.0),
    ("codex", "[fail 429 x1]", None),  # Codex's own retries are off (stub.provider_args)
))
def test_rate_limited_is_transient_and_retried_after_the_reported_delay(repo, env, stub, cli,
                                                                        marker, retry_after):
    proc = run_real(repo, env, cli, stub, f"limited {cli} note {marker}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [retry] = events(repo, "task.retry_scheduled")
    assert retry["data"]["kind"] == "transient" and "429" in retry["data"]["error"]
    assert retry["data"]["retry_after"] == retry_after
    assert retry["data"]["delay"] >= (retry_after or 0)
    # a rate limit, not a network blip: the adaptive limit halves on it
    assert events(repo, "attempt.finished")[0]["data"]["rate_limited"] is True
    [lowered] = events(repo, "agent.limit_changed")[:1]
    assert lowered["data"]["reason"].startswith("rate limited")
    started = [e["ts"] for e in events(repo, "attempt.started")]
    assert started[1] >= retry["ts"] + retry["data"]["delay"]  # the timer waited it all
    assert status(repo)["t1"]["state"] == "done"


def _user_turns(requests: list[dict], key: str) -> int:
    """How many user turns the last of ``requests`` carried in its body's ``key``."""
    return sum(1 for m in requests[-1]["body"][key] if m.get("role") == "user")


def _messages_turns(stub, text: str) -> int:
    return _user_turns([r for r in stub.message_requests()
                        if text in json.dumps(r["body"]["messages"])], "messages")


def _tool_messages_turns(stub, text: str) -> int:
    # opencode also asks the model for a title, a request without tools
    return _user_turns([r for r in stub.message_requests() if r["body"].get("tools")
                        and text in json.dumps(r["body"]["messages"])], "messages")


def _body_turns(key: str):
    return lambda stub, text: _user_turns(
        [r for r in stub.requests if text in json.dumps(r["body"])], key)


@pytest.mark.parametrize("cli, marker, user_turns, more_than", each(
    ("claude", "[fail 400 x1]", _messages_turns, 1),
    ("codex", "[fail 400 x1]", _body_turns("input"), 2),
    # The first attempt fails after its first turn, once Gemini CLI has saved the session.
    ("gemini", "[fail 400 x1 late]", _body_turns("contents"), 2),
    ("opencode", "[fail 400 x2]", _tool_messages_turns, 1),
))
def test_a_retry_resumes_the_failed_attempts_session(repo, env, stub, cli, marker, user_turns,
                                                       more_than):
    proc = run_real(repo, env, cli, stub, f"resumed {cli} note {marker}", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = [e["data"]["session_id"] for e in events(repo, "agent.session")
             if e["data"]["n"] == 1]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[1]["resumed_session"] is None
    assert spawned[2]["resumed_session"] == first[0]
    # What the CLI sent on the second attempt carries the first attempt's conversation.
    assert user_turns(stub, f"resumed {cli} note") > more_than


@pytest.mark.parametrize("cli", each(("gemini",)))
def test_a_gemini_session_that_was_never_saved_is_not_resumed_again(repo, env, stub, cli):
    # Failing on its first request, Gemini CLI saves no session: the resume fails, and wf
    # forgets the session so that the third attempt starts afresh.
    proc = run_real(repo, env, cli, stub, "unsaved gemini note [fail 400 x1]", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    finished = [e["data"] for e in events(repo, "attempt.finished")]
    assert [f["state"] for f in finished] == ["failed", "failed", "succeeded"]
    assert "could not be resumed" in finished[1]["error"]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[2]["resumed_session"] and spawned[3]["resumed_session"] is None
