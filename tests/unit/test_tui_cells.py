"""The dashboard's pure parts: what cells say, the filter, the log tail, the feed's folding."""

from __future__ import annotations

from wf import api
from wf.model import NewEvent, task_stream
from wf.store import SqliteEventStore
from wf.tui import cells
from wf.tui.feed import Feed
from wf.tui.tail import LogTail

TASK = {"id": "fix-1", "agent": "claude", "state": "retrying", "attempts": 2,
        "spec": {"retry": {"maximum_attempts": 5}}, "started_ts": 100.0, "ended_ts": None,
        "next_retry_at": 190.0, "prompt": "fix the parser", "last_error": "exit 75: rate limit"}


def test_a_row_says_attempt_of_max_elapsed_and_retry_in():
    row = cells.task_cells(TASK, 160.0, lines=cells.LineCounts(12, 3), last_line="waiting")
    assert [str(c) for c in row] == ["fix-1", "claude", "↻ retrying", "2/5", "1m00s", "30s",
                                     "+12 −3", "–", "waiting"]


def test_tokens_and_cost_show_when_an_agent_reports_them():
    assert cells.usage(TASK) == "–"
    assert cells.usage({**TASK, "tokens": 48_200, "cost_usd": 0.4312}) == "48k $0.43"
    assert cells.usage({**TASK, "tokens": 950, "cost_usd": None}) == "950"
    figures = cells.totals([{**TASK, "tokens": 1000, "cost_usd": 0.5},
                            {**TASK, "state": "failed", "tokens": None, "cost_usd": None}],
                           [{"state": "landed"}, {"state": "queued"}])
    assert (figures["retrying"], figures["failed"], figures["landed"], figures["tokens"],
            figures["cost_usd"]) == (1, 1, 1, 1000, 0.5)


def test_the_filter_matches_states_and_words():
    assert cells.matches(TASK, "retrying") and cells.matches(TASK, "state:retrying")
    assert not cells.matches(TASK, "failed")
    assert cells.matches(TASK, "PARSER fix") and cells.matches(TASK, "rate")
    assert not cells.matches(TASK, "parser lexer")


def test_diffstat_totals():
    stat = " a.py | 3 ++-\n b.py | 9 +++++++++\n 2 files changed, 11 insertions(+), 1 deletion(-)\n"
    assert cells.parse_diffstat(stat) == cells.LineCounts(11, 1)
    assert cells.parse_diffstat(" 1 file changed, 2 deletions(-)\n") == cells.LineCounts(0, 2)
    assert cells.parse_diffstat("") == cells.LineCounts(0, 0)


def test_the_tail_returns_whole_new_lines_and_survives_rotation(tmp_path):
    log = tmp_path / "1.log"
    tail = LogTail(log)
    assert tail.read_new() == ""  # no file yet
    log.write_text("one\ntw")
    assert tail.read_new() == "one\n"  # the partial line waits
    with open(log, "a") as f:
        f.write("o\nthree\n")
    assert tail.read_new() == "two\nthree\n"
    assert tail.read_new() == ""
    log.write_text("new\n")  # rotated: a shorter file starts over
    assert tail.read_new() == "new\n"


def test_the_feed_follows_by_sequence_and_keeps_agent_transcripts(repo):
    feed = Feed(api.open_repo(repo))
    assert feed.read_new() == []  # no log yet: the dashboard waits for the first run
    store = SqliteEventStore(repo / ".git" / "wf" / "wf.db")
    spec = {"id": "t", "prompt": "p", "agent": "a", "base": "main"}
    store.append([NewEvent(task_stream("t"), "task.submitted", {"spec": spec}),
                  NewEvent(task_stream("t"), "attempt.started", {"n": 1})])
    assert feed.fold(feed.read_new()) == {"t"}
    assert feed.p.tasks["t"]["state"] == "running" and feed.seq == 2
    store.append([NewEvent(task_stream("t"), "agent.message",
                           {"n": 1, "role": "assistant", "text": "reading the code"}),
                  NewEvent(task_stream("t"), "agent.tool", {"n": 1, "name": "bash",
                                                            "summary": "pytest -q"})])
    events = feed.read_new()
    assert [e.seq for e in events] == [3, 4]
    feed.fold(events + events)  # a second fold of the same events changes nothing
    assert [e.type for e in feed.transcript("t", 1)] == ["agent.message", "agent.tool"]
    assert feed.transcript("t", 2) == []
    store.close()
    feed.close()


def test_a_disabled_hook_endpoint_is_an_attention_item_in_the_header(repo):
    feed = Feed(api.open_repo(repo))
    store = SqliteEventStore(api.open_repo(repo).db_path)
    try:
        store.append([NewEvent("hooks", "hook.endpoint_disabled",
                               {"endpoint": "chat", "reason": "the endpoint answered 410 Gone"})])
        feed.fold(feed.read_new())
        assert feed.hooks_disabled == {"chat": "the endpoint answered 410 Gone"}
        figures = cells.totals(feed.p.tasks.values(), feed.p.queue.values())
        text = cells.totals_text(figures, engine_active=False,
                                 hooks_disabled=tuple(feed.hooks_disabled)).plain
        assert text.endswith("⚠ hook chat disabled")
        store.append([NewEvent("hooks", "hook.endpoint_enabled", {"endpoint": "chat"})])
        feed.fold(feed.read_new())
        assert feed.hooks_disabled == {}
    finally:
        store.close()
        feed.close()


def test_a_budget_shows_as_paused_or_held_and_in_the_header():
    running = {**TASK, "state": "running", "paused": 1,
               "budget_exceeded": {"message": "task:fix-1 used 1000 tokens of 1000"}}
    held = {**TASK, "id": "fix-2", "state": "queued", "paused": 0,
            "budget_exceeded": {"message": "run used $5 of $5"}}
    assert str(cells.task_state_text(running)) == "⏸ paused"
    assert str(cells.task_state_text(held)) == "⏸ held"
    assert str(cells.task_state_text(TASK)) == "↻ retrying"
    assert cells.budget_holds([running, held, {**held, "id": "x", "state": "failed"}]) == (
        "fix-1", "fix-2")
    text = cells.totals_text(cells.totals([running, held], []), engine_active=True,
                             budget_held=("fix-1", "fix-2"))
    assert "⚠ budget: fix-1, fix-2" in str(text)


def test_a_running_task_without_live_figures_says_so():
    running = {**TASK, "state": "running"}
    assert cells.usage(running, "live") == "–"
    assert cells.usage(running, "at_end") == "– no live"
    assert cells.usage({**running, "tokens": 950}, "none") == "950 no live"
    assert cells.usage(TASK, "none") == "–"  # not running: nothing is missing now


def test_lowered_or_waiting_agent_limits_are_in_the_header():
    rows = [{"agent": "claude", "parallel": 2, "max_parallel": 8, "not_before": 130.0,
             "reason": "rate limited: 8 -> 4"},
            {"agent": "codex", "parallel": 4, "max_parallel": 4, "not_before": 0.0,
             "reason": "3 successes: 3 -> 4"}]
    assert cells.agent_limits(rows, 100.0) == (
        "claude 2/8 (rate limited: 8 -> 4), starts in 30s",)
    assert cells.agent_limits(rows, 200.0) == ("claude 2/8 (rate limited: 8 -> 4)",)
    text = cells.totals_text(cells.totals([TASK], []), engine_active=True,
                             limits=cells.agent_limits(rows, 200.0))
    assert "⇣ claude 2/8 (rate limited: 8 -> 4)" in str(text)
