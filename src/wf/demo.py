"""``wf demo``: a throwaway repository with tasks for the demo agent.

Six tasks show the whole flow: parallel work, a dependency chain, a task that depends on two
others (its worktree starts from a merge of both branches), a transient failure retried after a
backoff, and a change the agent leaves uncommitted for wf to commit.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from wf import gitx
from wf.agents.builtin import demo_agent

FILES = {
    "README.md": "# demo project\n\nA small repository made by `wf demo`.\n",
    "src/utils.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
    ".gitignore": ".env\n",
}

WF_TOML = """\
# made by `wf demo`: the demo agent, short delays so the whole flow takes seconds
max_parallel = 3
agent = "demo"

[retry]
maximum_attempts = 3
initial_interval = "1s"
backoff_coefficient = 2.0
jitter = 0.1

[agents.demo]
command = {command}
env = {{ WF_DEMO_DELAY = "0.5" }}
"""

TASKS_TOML = """\
[[task]]
id = "docs-utils"
prompt = "Write documentation for src/utils.py"

[[task]]
id = "type-hints"
prompt = "Add type hints to src/utils.py [uncommitted]"

[[task]]
id = "flaky-api"
prompt = "[flaky] Fetch the changelog from the rate-limited API"

[[task]]
id = "tests-utils"
prompt = "Write tests for the documented utils"
depends_on = ["docs-utils"]

[[task]]
id = "summary"
prompt = "Summarise the docs and the tests in one page"
depends_on = ["docs-utils", "tests-utils"]

[[task]]
id = "release-notes"
prompt = "Draft release notes"
depends_on = ["flaky-api"]
"""


def make_demo_repo(path: Path | None = None) -> Path:
    """Create the demo repository (in a new temp folder unless ``path`` is given)."""
    parent = Path(path) if path else Path(tempfile.mkdtemp(prefix="wf-demo-"))
    root = parent / "demo-repo"
    root.mkdir(parents=True, exist_ok=False)
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    command = "[" + ", ".join(f'"{a}"' for a in demo_agent.command) + "]"
    (root / "wf.toml").write_text(WF_TOML.format(command=command.replace("\\", "\\\\")))
    (root / "tasks.toml").write_text(TASKS_TOML)
    gitx.init_repo(root, "seed the demo project")
    return root


if __name__ == "__main__":
    print(make_demo_repo(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
