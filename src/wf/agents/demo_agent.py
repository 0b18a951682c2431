"""The demo agent: a real script that edits files and commits, used by ``wf demo``.

It reads the task from WF_PROMPT and WF_ATTEMPT. A prompt containing "[flaky]" fails its first
attempt as a transient error (exit 75, as a rate-limited agent would), so the demo shows a
retry; one containing "[uncommitted]" leaves its change for wf to commit.
"""

import os
import subprocess
import sys
import time


def main() -> int:
    task = sys.argv[1] if len(sys.argv) > 1 else os.environ["WF_TASK_ID"]
    prompt = os.environ.get("WF_PROMPT", "")
    attempt = int(os.environ.get("WF_ATTEMPT", "1"))
    steps = float(os.environ.get("WF_DEMO_DELAY", "0.4"))
    print(f"demo agent: task {task}, attempt {attempt}: {prompt}", flush=True)
    for step in ("reading the code", "planning the change", "editing files"):
        time.sleep(steps)
        print(f"  {step}...", flush=True)
    if "[flaky]" in prompt and attempt == 1:
        print("  error: 429 rate limited by the model provider; try again later", flush=True)
        return 75
    os.makedirs("notes", exist_ok=True)
    with open(os.path.join("notes", f"{task}.md"), "a") as f:
        f.write(f"# {task}\n\n{prompt}\n\nDone by the demo agent on attempt {attempt}.\n")
    if "[uncommitted]" in prompt:
        print("  leaving the change for wf to commit", flush=True)
        return 0
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=demo agent", "-c", "user.email=demo@wf.invalid",
                    "commit", "-q", "-m", f"{task}: {prompt[:60]}"], check=True)
    print("  committed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
