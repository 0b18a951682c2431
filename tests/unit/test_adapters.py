"""Each adapter against recorded output streams (tests/fixtures/agents/): what it reads, how it
judges the end, and the argv it builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wf.agents import adapter as a
from wf.agents.builtin import builtin_agents, find_adapter, resolve_agent
from wf.agents.process import agent_environment, fill_placeholders
from wf.config import AgentConfig
from wf.engine.decide import classify_exit
from wf.model import FailureKind

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "agents"


def read(cli: str, scenario: str) -> tuple[list[a.Entry], a.Verdict | None, int]:
    [path] = FIXTURES.glob(f"{cli}/{scenario}.*")
    header, *lines = path.read_text().splitlines()
    exit_code = int(dict(i.split("=", 1) for i in header[2:].split())["exit"])
    reader = find_adapter(cli).reader()
    entries = [e for line in lines for e in reader.feed(line)]
    return entries, reader.verdict(exit_code), exit_code


def kinds(entries: list[a.Entry], kind: str) -> list[dict]:
    return [e.data for e in entries if e.kind == kind]


@pytest.mark.parametrize("cli, session, tool, tokens, cost, text", [
    ("codex", "0199a213-81c0-7800-8aa1-bbab2a035a53", "edit", (24763, 122), None,
     "I added notes/codex.txt with the note."),
    ("gemini", "c25acda3-b9c8-4b5d-8a4f-2a8b3f0d9e11", "write_file", (1390, 90), None,
     "I wrote notes/gemini.txt."),
    ("opencode", "ses_494719016ffe85dkDMj0FPRbHK", "write", (2500, 100), 0.0032,
     "Created notes/opencode.txt."),
    ("aider", None, "edit", (2300, 150), 0.0073, None),
    ("claude", "5d0c3a1e-0000-4000-8000-000000000001", "Write", (1000, 50), 0.0123,
     "Wrote the note."),
])
def test_a_successful_stream_is_read_into_entries(cli, session, tool, tokens, cost, text):
    entries, verdict, _ = read(cli, "slow" if cli == "claude" else "ok")
    assert [s["session_id"] for s in kinds(entries, "session")] == ([session] if session else [])
    assert tool in [t["name"] for t in kinds(entries, "tool")]
    usages = kinds(entries, "usage")
    assert (sum(u["input_tokens"] for u in usages), sum(u["output_tokens"] for u in usages)) \
        == tokens
    costs = [u["cost_usd"] for u in usages if u["cost_usd"] is not None]
    assert (round(sum(costs), 6) if costs else None) == cost
    if text:
        assert text in [m["text"] for m in kinds(entries, "message")]
    assert verdict is None or verdict.kind is None


@pytest.mark.parametrize("cli, scenario, kind, retry_after, words", [
    ("codex", "rate_limit", FailureKind.TRANSIENT, 1.2, "Rate limit"),
    ("codex", "auth", FailureKind.CONFIG_ERROR, None, "OPENAI_API_KEY"),
    ("codex", "agent_error", FailureKind.AGENT_ERROR, None, "invalid output"),
    ("gemini", "rate_limit", FailureKind.TRANSIENT, 1.5, "RESOURCE_EXHAUSTED"),
    ("gemini", "auth", FailureKind.CONFIG_ERROR, None, "GEMINI_API_KEY"),
    ("gemini", "turn_limit", FailureKind.LIMIT, None, "turn limit"),
    ("opencode", "rate_limit", FailureKind.TRANSIENT, 1.0, "Rate limit"),
    ("opencode", "auth", FailureKind.CONFIG_ERROR, None, "API key"),
    ("aider", "rate_limit", FailureKind.TRANSIENT, 1.0, "rate limited"),
    ("aider", "auth", FailureKind.CONFIG_ERROR, None, "API key"),
])
def test_a_failed_stream_is_classified(cli, scenario, kind, retry_after, words):
    _, verdict, code = read(cli, scenario)
    assert verdict is not None and verdict.kind == kind
    assert verdict.retry_after == retry_after
    assert words in verdict.error and "\n" not in verdict.error
    outcome = classify_exit({"exit_code": code}, changed=False, commit=None, last_line="",
                            verdict=verdict)
    assert (outcome.kind, outcome.retry_after) == (kind, retry_after)
    # every "rate_limit" scenario is one the adaptive limit reacts to; nothing else is
    assert outcome.rate_limited == verdict.rate_limited == (scenario == "rate_limit")


@pytest.mark.parametrize("status, message, rate_limited", [
    (429, "API Error: 429 rate_limit_error", True),
    (529, "API Error: 529 overloaded_error", True),
    (503, "API Error: 503 service unavailable", False),
    (None, "API Error: Unable to connect to API (ECONNRESET)", False),
])
def test_claude_tells_a_rate_limit_from_a_network_blip(status, message, rate_limited):
    reader = find_adapter("claude").reader()
    reader.feed('{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,'
                f'"retry_delay_ms":2500,"error_status":{status or "null"},"error":"x"}}')
    reader.feed(claude_result(is_error=True, api_error_status=status, result=message))
    verdict = reader.verdict(1)
    assert (verdict.kind, verdict.retry_after, verdict.rate_limited) == (
        FailureKind.TRANSIENT, 2.5, rate_limited)


@pytest.mark.parametrize("cli, message, rate_limited", [
    ("codex", "429 Too Many Requests: try again in 2s", True),
    ("codex", "stream disconnected before completion", False),
    ("codex", "503 Service Unavailable", False),
    ("aider", "litellm.APIConnectionError: connection refused", False),
    ("aider", "litellm.RateLimitError: rate limited", True),
])
def test_transient_failures_that_are_not_rate_limits_say_so(cli, message, rate_limited):
    reader = find_adapter(cli).reader()
    line = (json.dumps({"type": "turn.failed", "error": {"message": message}})
            if cli == "codex" else message)
    reader.feed(line)
    verdict = reader.verdict(1)
    assert (verdict.kind, verdict.rate_limited) == (FailureKind.TRANSIENT, rate_limited)


def test_exit_75_is_a_rate_limit_only_when_its_last_line_says_so():
    limited = classify_exit({"exit_code": 75}, changed=False, commit=None,
                            last_line="error: 429 rate limited by the model provider")
    blip = classify_exit({"exit_code": 75}, changed=False, commit=None,
                         last_line="network unreachable")
    assert (limited.kind, limited.rate_limited) == (FailureKind.TRANSIENT, True)
    assert (blip.kind, blip.rate_limited) == (FailureKind.TRANSIENT, False)


def claude_result(**fields) -> str:
    import json

    return json.dumps({"type": "result", "subtype": "success", "is_error": False,
                       "session_id": "s", "usage": {}, "permission_denials": [],
                       "terminal_reason": "completed", **fields})


@pytest.mark.parametrize("fields, kind", [
    ({"is_error": True, "api_error_status": 429, "result": "API Error: 429"},
     FailureKind.TRANSIENT),
    ({"is_error": True, "api_error_status": 529, "result": "API Error: 529"},
     FailureKind.TRANSIENT),
    ({"is_error": True, "api_error_status": 401, "result": "Failed to authenticate"},
     FailureKind.CONFIG_ERROR),
    ({"is_error": True, "api_error_status": 400, "result": "API Error: 400"},
     FailureKind.AGENT_ERROR),
    ({"is_error": True, "subtype": "error_max_turns", "terminal_reason": "max_turns"},
     FailureKind.LIMIT),
    ({"is_error": True, "subtype": "error_max_budget_usd",
      "terminal_reason": "error_max_budget_usd"}, FailureKind.LIMIT),
])
def test_claude_judges_by_is_error_and_terminal_reason_not_subtype(fields, kind):
    reader = find_adapter("claude").reader()
    reader.feed(claude_result(**fields))
    assert reader.verdict(1).kind == kind


def test_claude_exit_zero_with_a_denied_tool_and_no_change_is_policy_denied():
    reader = find_adapter("claude").reader()
    reader.feed(claude_result(permission_denials=[{"tool_name": "Bash", "tool_input": {}}]))
    verdict = reader.verdict(0)
    denied = classify_exit({"exit_code": 0}, changed=False, commit=None, last_line="",
                           verdict=verdict)
    assert denied.kind == FailureKind.POLICY_DENIED and "Bash" in denied.error
    done = classify_exit({"exit_code": 0}, changed=True, commit="c", last_line="",
                         verdict=verdict)
    assert done.succeeded  # the change it could make counts


def test_claude_crash_without_a_result_is_judged_by_its_exit_code():
    reader = find_adapter("claude").reader()
    reader.feed('{"type":"system","subtype":"init","session_id":"s"}')
    assert reader.verdict(-9) is None
    outcome = classify_exit({"exit_code": -9}, changed=False, commit=None, last_line="",
                            verdict=None)
    assert outcome.kind == FailureKind.AGENT_ERROR and "signal 9" in outcome.error


def test_readers_take_any_line_without_raising():
    lines = ["", "not json", "{", "[1, 2]", '{"type": 5}', '{"type":"result","usage":null}',
             '{"type":"item.completed","item":null}', '{"type":"assistant","message":{}}',
             '{"type":"tool_use","part":{"state":null}}', "\x00\xff", "Tokens: 1k sent"]
    for name in ("claude", "codex", "gemini", "opencode", "aider"):
        reader = find_adapter(name).reader()
        for line in lines:
            reader.feed(line)
        reader.verdict(1)


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "opencode", "aider"])
def test_the_prompt_is_one_argument_even_when_it_looks_like_an_option(name):
    spec = resolve_agent(name, builtin_agents()[name])
    prompt = "--dangerously-skip-permissions; rm -rf / `x` $(y)"
    argv = fill_placeholders(spec.command, {"prompt": prompt})
    assert argv[0] == name
    holding = [arg for arg in argv if prompt in arg]
    assert len(holding) == 1
    # Either after "--", or glued to its flag: never a separate argument an option parser reads.
    i = argv.index(holding[0])
    assert argv[i - 1] == "--" or holding[0] != prompt


def test_overrides_shape_the_claude_invocation():
    agent = AgentConfig(binary="/opt/claude", model="opus", args=("--max-turns", "5"),
                        allowed_tools=("Edit", "Bash(pytest *)"), permission_mode="plan",
                        resume=True)
    spec = resolve_agent("claude", agent)
    assert spec.command[0] == "/opt/claude" and spec.adapter == "claude"
    assert ["--model", "opus"] == list(spec.command[spec.command.index("--model"):][:2])
    assert "Edit,Bash(pytest *)" in spec.command and "plan" in spec.command
    assert "--max-turns" in spec.command
    assert spec.resume_command[spec.resume_command.index("--resume") + 1] == "{session}"
    plain = resolve_agent("claude", AgentConfig())
    assert plain.resume_command is None  # resume is opt-in


def test_an_agent_of_another_name_can_use_an_adapter_and_unknown_ones_fail():
    spec = resolve_agent("fast", AgentConfig(adapter="codex", model="gpt-5-mini"))
    assert spec.adapter == "codex" and "gpt-5-mini" in spec.command
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        resolve_agent("x", AgentConfig(adapter="nope"))
    with pytest.raises(ValueError, match="has no command"):
        resolve_agent("mine", AgentConfig(model="m"))
    own = resolve_agent("mine", AgentConfig(command=("my-agent", "{prompt}")))
    assert own.adapter is None and own.command == ("my-agent", "{prompt}")


def test_agent_environment_passes_the_adapters_variables_and_never_forge_tokens():
    base = {"PATH": "/bin", "HOME": "/h", "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "u",
            "CLAUDE_CODE_MAX_RETRIES": "1", "OPENAI_API_KEY": "o", "GH_TOKEN": "g",
            "GITHUB_TOKEN": "g", "GITLAB_TOKEN": "g", "AWS_SECRET_ACCESS_KEY": "s"}
    spec = resolve_agent("claude", AgentConfig(pass_env=("GH_TOKEN", "MY_VAR")))
    env = agent_environment({**base, "MY_VAR": "m"}, wf_vars={"WF_TASK_ID": "t"}, extra={},
                            pass_env=spec.pass_env)
    assert set(env) == {"PATH", "HOME", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                        "CLAUDE_CODE_MAX_RETRIES", "MY_VAR", "WF_TASK_ID"}


def test_a_tool_call_is_recorded_by_what_it_targets_not_the_content_it_writes():
    entry = a.tool("Write", {"file_path": "/w/.env", "content": "API_KEY=sk-secret"})
    assert entry.data["input"] == "/w/.env" and "secret" not in str(entry.event_data())
    assert a.tool("Bash", {"command": "pytest -q", "timeout": 5}).data["input"] == "pytest -q"
    assert a.tool("Other", {"x": 1, "y": 2}).data["input"] == '{"x": 1, "y": 2}'


def test_claude_usage_counts_live_each_message_once_and_the_result_adds_the_rest():
    import json

    reader = find_adapter("claude").reader()

    def assistant(mid: str, tokens_in: int, out: int) -> str:
        return json.dumps({"type": "assistant", "message": {
            "id": mid, "content": [{"type": "text", "text": "hi"}],
            "usage": {"input_tokens": tokens_in, "cache_read_input_tokens": 5,
                      "output_tokens": out}}})

    def usages(line: str) -> list[dict]:
        return [e.data for e in reader.feed(line) if e.kind == "usage"]

    assert usages(assistant("m1", 10, 2)) == [
        {"input_tokens": 15, "output_tokens": 2, "cost_usd": None}]
    assert usages(assistant("m1", 10, 2)) == []  # the same message's next content block
    assert len(usages(assistant("m2", 20, 3))) == 1
    final = usages(claude_result(usage={"input_tokens": 100, "output_tokens": 10},
                                 total_cost_usd=0.5))
    # the totals less what was counted live: 100 - 40 in, 10 - 5 out, and the cost
    assert final == [{"input_tokens": 60, "output_tokens": 5, "cost_usd": 0.5}]
