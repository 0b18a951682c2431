"""The core never loads the dashboard's or Temporal's libraries, nor a forge client."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_cli_import_neither_textual_temporalio_nor_forge_clients():
    code = (
        "import sys\n"
        "import wf.api, wf.engine.local, wf.store, wf.worktrees, wf.configload, wf.planning\n"
        "import wf.merge_queue.queue_loop, wf.providers, wf.pull_requests\n"
        "from wf.cli import _register; _register()\n"
        "heavy = ('textual', 'temporalio', 'github', 'gitlab')  # forge clients load on use\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
