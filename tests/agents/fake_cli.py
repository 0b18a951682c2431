"""A stand-in for an agent CLI: ``fake_cli.py NAME ARGS...``, installed under the CLI's name
(``codex``, ``gemini``, ...) by ``install_fake_clis``.

It finds the prompt where the real CLI takes it (after ``--``, or ``--prompt=``/
``--message=``), picks a recorded stream from ``tests/fixtures/agents/NAME/`` by the prompt's
``scenario=A,B,...`` (A on attempt 1, B on attempt 2, the last one after that), prints it,
writes the file the recording says, and exits with its status. Every invocation's argv is
appended as JSON to ``$HOME/NAME-argv.jsonl`` so tests can see what wf ran.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "agents"


def prompt_of(args):
    for arg in args:
        for flag in ("--prompt=", "--message="):
            if arg.startswith(flag):
                return arg[len(flag):]
    return args[args.index("--") + 1] if "--" in args else ""


def main():
    name, args = sys.argv[1], sys.argv[2:]
    with open(Path(os.environ["HOME"]) / f"{name}-argv.jsonl", "a") as f:
        f.write(json.dumps(args) + "\n")
    if args == ["--version"]:
        print(f"{name} 9.9.9 (fake)")
        return 0
    found = re.search(r"scenario=([\w,]+)", prompt_of(args))
    scenarios = (found.group(1) if found else "ok").split(",")
    attempt = int(os.environ.get("WF_ATTEMPT", "1"))
    scenario = scenarios[min(attempt, len(scenarios)) - 1]
    [path] = FIXTURES.glob(f"{name}/{scenario}.*")
    header, *lines = path.read_text().splitlines()
    directive = dict(item.split("=", 1) for item in header[2:].split())
    pause = float(directive.get("sleep", 0))
    for line in lines:
        print(line, flush=True)
        time.sleep(pause)
    if "edit" in directive:
        target = Path(directive["edit"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{name} attempt {attempt}\n")
    return int(directive.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
