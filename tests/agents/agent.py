"""A real agent for tests: ``agent.py MODE [ARG]``, run in the task's worktree.

Modes:
  commit          write notes/<task>.txt and commit it
  edit            write the file, leave it uncommitted (wf commits it)
  noop            change nothing, exit 0
  fail CODE       print a line and exit CODE
  flaky K         exit 75 on attempts below K, then commit
  slow SECONDS    print a line a second for SECONDS, then commit
  silent SECONDS  print one line, then say nothing for SECONDS, then commit
  hang            print a line, then sleep forever
  gated FILE      print a line, wait until FILE exists, then commit
  marker FILE     exit 1 while FILE does not exist, then commit
  flood MB        print MB megabytes of output, then commit
  spend N         Claude Code stream-json: N assistant messages 0.1 s apart, each with
                  usage of 100 input tokens (journal line "tick"), a result line, then commit
Every run appends "<task> <attempt> <pid>" to $WF_TEST_JOURNAL if set (via argv[3]).
"""

import os
import subprocess
import sys
import time

mode = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else ""
journal = sys.argv[3] if len(sys.argv) > 3 else ""
task = os.environ["WF_TASK_ID"]
attempt = int(os.environ["WF_ATTEMPT"])
if journal:
    with open(journal, "a") as f:
        f.write(f"{task} {attempt} {os.getpid()} start\n")
print(f"agent {mode} task={task} attempt={attempt} port={os.environ.get('WF_PORT')}", flush=True)


def write_and_commit(commit=True):
    os.makedirs("notes", exist_ok=True)
    with open(f"notes/{task}.txt", "a") as f:
        f.write(f"{task} attempt {attempt}\n")
    if commit:
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                        f"agent work for {task}"], check=True)
    if journal:
        with open(journal, "a") as f:
            f.write(f"{task} {attempt} {os.getpid()} done\n")


if mode == "commit":
    write_and_commit()
elif mode == "edit":
    write_and_commit(commit=False)
elif mode == "noop":
    pass
elif mode == "fail":
    print("something went wrong", flush=True)
    sys.exit(int(arg))
elif mode == "flaky":
    if attempt < int(arg):
        print("rate limited", flush=True)
        sys.exit(75)
    write_and_commit()
elif mode == "slow":
    for i in range(int(float(arg))):
        print(f"working {i}", flush=True)
        time.sleep(1)
    write_and_commit()
elif mode == "silent":
    time.sleep(float(arg))
    write_and_commit()
elif mode == "gated":
    print("waiting for the gate", flush=True)
    while not os.path.exists(arg):
        time.sleep(0.05)
    write_and_commit()
elif mode == "marker":
    if not os.path.exists(arg):
        print(f"no {arg} yet", flush=True)
        sys.exit(1)
    write_and_commit()
elif mode == "hang":
    while True:
        time.sleep(3600)
elif mode == "flood":
    chunk = "x" * 1023 + "\n"
    for _ in range(int(float(arg) * 1024)):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    write_and_commit()
elif mode == "spend":
    import json

    for i in range(int(arg)):
        print(json.dumps({"type": "assistant", "message": {
            "id": f"msg_{attempt}_{i}", "role": "assistant",
            "content": [{"type": "text", "text": f"step {i}"}],
            "usage": {"input_tokens": 100, "output_tokens": 0}}}), flush=True)
        if journal:
            with open(journal, "a") as f:
                f.write(f"{task} {attempt} {os.getpid()} tick\n")
        time.sleep(0.1)
    write_and_commit()
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                      "result": "done", "total_cost_usd": 0.01 * int(arg),
                      "usage": {"input_tokens": 100 * int(arg), "output_tokens": 0}}),
          flush=True)
else:
    sys.exit(f"unknown mode {mode}")
