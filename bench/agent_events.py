"""What reading an agent CLI's output costs: one task whose (fake) Claude Code prints N
stream-json lines as fast as it can, run through ``wf run --agent claude``.

    python bench/agent_events.py [--lines 20000] [--dir PATH]

Each line is an assistant message or a tool call, so every line becomes an ``agent.*`` event in
the log. Prints the agent's own time (printing to a file, measured by the agent), wf's wall time
for the task, the events recorded and the rate; target: wf keeps up, i.e. the task ends within
2 s of the agent (the shim's drain) plus 1 s per 10,000 events. A benchmark, not a test: it exits
0 whatever the verdict, non-zero only when the run itself broke.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAKE_CLAUDE = r'''#!{python}
import json, sys, time
n = {lines}
start = time.time()
print(json.dumps({{"type": "system", "subtype": "init", "session_id": "bench"}}))
for i in range(n):
    if i % 2:
        block = {{"type": "text", "text": f"thinking about step {{i}} " * 4}}
    else:
        block = {{"type": "tool_use", "id": f"t{{i}}", "name": "Read", "input": {{"file_path": f"f{{i}}.py"}}}}
    print(json.dumps({{"type": "assistant", "message": {{"role": "assistant", "content": [block]}}}}))
open("out.txt", "w").write("x")
print(json.dumps({{"type": "result", "is_error": False, "session_id": "bench", "usage": {{"input_tokens": 1, "output_tokens": 1}}, "total_cost_usd": 0.0, "permission_denials": [], "terminal_reason": "completed"}}))
sys.stdout.flush()
open("{timing}", "w").write(str(time.time() - start))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--dir", default=None, help="work here instead of a temp folder")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wf-bench-agent-", dir=args.dir))
    try:
        repo, bin_dir = root / "repo", root / "bin"
        bin_dir.mkdir()
        timing = root / "agent-seconds"
        fake = bin_dir / "claude"
        fake.write_text(FAKE_CLAUDE.format(python=sys.executable, lines=args.lines,
                                           timing=timing))
        fake.chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "b",
               "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
        for cmd in (["git", "init", "-q", "-b", "main", str(repo)],
                    ["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "seed"]):
            subprocess.run(cmd, check=True, env=env)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "wf", "run", "-p", "bench",
                               "--agent", "claude", "--json"], cwd=repo, env=env,
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        con = sqlite3.connect(repo / ".git" / "wf" / "wf.db")
        counts = dict(con.execute("SELECT type, count(*) FROM events WHERE type LIKE 'agent.%' "
                                  "GROUP BY type").fetchall())
        con.close()
        recorded = sum(counts.values())
        agent = float(timing.read_text())
        budget = agent + 2.0 + recorded / 10000
        print(f"lines printed     {args.lines + 2:,}")
        print(f"agent alone       {agent:.2f} s")
        print(f"wf run wall       {wall:.2f} s (the whole command, start-up included)")
        print(f"events recorded   {recorded:,} {json.dumps(counts)}")
        print(f"rate              {recorded / wall:,.0f} events/s of wall time")
        print(f"{'PASS' if wall <= budget else 'FAIL'}  wall {wall:.2f} s <= {budget:.2f} s")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
