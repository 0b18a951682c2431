"""The core never loads the dashboard's or Temporal's libraries, nor a forge client, nor libgit2
(``wf.gitx.objects`` imports pygit2 when the merge queue first uses it)."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_cli_import_neither_textual_temporalio_forge_clients_nor_pygit2():
    code = (
        "import sys\n"
        "import wf.api, wf.engine.local, wf.store, wf.worktrees, wf.configload, wf.task_input\n"
        "import wf.merge_queue.queue_loop, wf.providers, wf.pull_requests\n"
        "from wf.cli import _register; _register()\n"
        "import wf.gitx\n"
        "heavy = ('textual', 'temporalio', 'github', 'gitlab',  # forge clients load on use\n"
        "         'pygit2', '_pygit2')  # so does libgit2, with the queue's first object work\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
