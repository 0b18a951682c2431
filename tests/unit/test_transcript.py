"""TranscriptRecorder: an attempt's log read through its adapter into agent.* events whose
idempotency keys do not depend on who reads the log or when."""

from __future__ import annotations

import json
import os

from wf.agents.builtin import find_adapter
from wf.agents.process import AttemptFiles
from wf.agents.transcript import TranscriptRecorder


def line(text: str) -> bytes:
    message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
    return (json.dumps({"type": "assistant", "message": message}) + "\n").encode()


def keys(events) -> list[str]:
    return [e.idempotency_key for e in events]


def test_events_follow_the_log_across_partial_lines_and_a_rotation(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 1)
    files.prefix.parent.mkdir(parents=True)
    live = TranscriptRecorder(find_adapter("claude"), files, "t", 1)
    assert live.poll() == []  # no log yet
    first, second = line("one"), line("two")
    files.log.write_bytes(first + second[:10])  # the second line is half written
    got = live.poll()
    assert [e.data["text"] for e in got] == ["one"]
    with open(files.log, "ab") as f:
        f.write(second[10:])
    got += live.poll()
    # The shim rotates: the log becomes log.1 and a new log starts.
    os.replace(files.log, files.log.with_name(files.log.name + ".1"))
    files.log.write_bytes(line("three"))
    got += live.poll(final=True)
    assert [e.data["text"] for e in got] == ["one", "two", "three"]
    assert keys(got) == ["agent:t:1:1", "agent:t:1:2", "agent:t:1:3"]
    assert {e.type for e in got} == {"agent.message"} and all(e.data["n"] == 1 for e in got)
    # An engine adopting the attempt reads it all again and finds the same keys.
    adopted = TranscriptRecorder(find_adapter("claude"), files, "t", 1)
    assert keys(adopted.poll(final=True)) == keys(got)


def test_an_unterminated_last_line_counts_once_the_agent_exited(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 2)
    files.prefix.parent.mkdir(parents=True)
    files.log.write_bytes(line("last").rstrip(b"\n"))
    recorder = TranscriptRecorder(find_adapter("claude"), files, "t", 2)
    assert recorder.poll() == []
    [event] = recorder.poll(final=True)
    assert event.data["text"] == "last" and event.idempotency_key == "agent:t:2:1"


def test_a_session_that_cannot_be_resumed_is_forgotten(tmp_path):
    files = AttemptFiles.of(tmp_path, "t", 2)
    files.prefix.parent.mkdir(parents=True)
    files.log.write_bytes(b"Error resuming session: No previous sessions found for this project.\n")
    recorder = TranscriptRecorder(find_adapter("gemini"), files, "t", 2)
    [event] = recorder.poll(final=True)
    assert (event.type, event.data["session_id"]) == ("agent.session", None)
    verdict = recorder.verdict(42)  # Gemini CLI calls it an input error: not retryable
    assert verdict.kind == "agent_error" and "starts afresh" in verdict.error
