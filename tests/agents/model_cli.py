"""A stand-in for Claude Code that really calls a model API: run as an agent with
``adapter = "claude"``, so wf reads its stream-json as Claude Code's.

It prints the ``system``/``init`` line, sends one ``POST $ANTHROPIC_BASE_URL/v1/messages``
and waits for the answer (the model call: as long as the server holds it). On 200 it prints
the assistant message with its usage, writes ``notes/<task>.txt`` (wf commits it) and prints
a ``result`` line, exit 0. On 429 or 529 it does what Claude Code does: while it has retries
left (``CLAUDE_CODE_MAX_RETRIES``, default 1 here), it prints a ``system``/``api_retry`` line
with the ``retry-after`` the server gave (``retry_delay_ms``), waits that long and asks again;
then it prints an error ``result`` with ``api_error_status`` and exits 1, so the claude
adapter says TRANSIENT, rate limited, ``retry_after`` from the last ``api_retry``. A server it
cannot reach is Claude Code's "Unable to connect to API" (a transient failure that is not a
rate limit). Every run appends "<task> <attempt> <pid> start|done|limited" to argv[1] if given.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import zlib

task, attempt = os.environ["WF_TASK_ID"], int(os.environ["WF_ATTEMPT"])
journal = sys.argv[1] if len(sys.argv) > 1 else ""
session = f"00000000-0000-4000-8000-{zlib.crc32(task.encode()):012d}"
USAGE = {"input_tokens": 0, "output_tokens": 0}


def say(obj):
    print(json.dumps(obj), flush=True)


def note(what):
    if journal:
        with open(journal, "a") as f:
            f.write(f"{task} {attempt} {os.getpid()} {what}\n")


def call():
    """(status, retry-after seconds or None, body) of one request to the model."""
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": f"write the note of {task}"}]}).encode()
    request = urllib.request.Request(
        os.environ["ANTHROPIC_BASE_URL"].rstrip("/") + "/v1/messages", data=body,
        headers={"content-type": "application/json", "x-api-key": "test"})
    try:
        with urllib.request.urlopen(request, timeout=300) as resp:
            return resp.status, None, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        after = exc.headers.get("retry-after")
        return exc.code, float(after) if after else None, json.loads(exc.read() or b"{}")


def fail(status, text):
    say({"type": "result", "subtype": "success", "is_error": True, "num_turns": 1,
         "result": text, "session_id": session, "total_cost_usd": 0, "usage": USAGE,
         "permission_denials": [], "api_error_status": status})
    sys.exit(1)


note("start")
say({"type": "system", "subtype": "init", "session_id": session, "model": "claude-sonnet-4-5"})
retries = int(os.environ.get("CLAUDE_CODE_MAX_RETRIES", "1"))
for tried in range(retries + 1):
    try:
        status, after, answer = call()
    except OSError as exc:
        fail(None, f"API Error: Unable to connect to API ({type(exc).__name__})")
    if status == 200:
        break
    if status in (429, 529) and tried < retries:
        delay = after if after is not None else 0.5 * 2 ** tried
        say({"type": "system", "subtype": "api_retry", "attempt": tried + 1,
             "max_retries": retries, "retry_delay_ms": int(delay * 1000),
             "error_status": status, "error": "rate_limit", "session_id": session})
        time.sleep(delay)
        continue
    note("limited" if status in (429, 529) else "error")
    fail(status, f"API Error: {status} {json.dumps(answer)}")

usage = answer["usage"]
say({"type": "assistant", "session_id": session, "message": {
    "id": answer["id"], "role": "assistant", "content": answer["content"], "usage": usage}})
os.makedirs("notes", exist_ok=True)
with open(f"notes/{task}.txt", "a") as f:
    f.write(f"{task} attempt {attempt}\n")
say({"type": "result", "subtype": "success", "is_error": False, "num_turns": 1,
     "result": "Done: the note is written.", "session_id": session,
     "total_cost_usd": 0.001, "usage": usage, "permission_denials": [],
     "terminal_reason": "completed"})
note("done")
