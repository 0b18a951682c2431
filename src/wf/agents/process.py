"""Starting, finding and stopping agent processes.

An attempt's files live in ``<logs>/<task>/<n>.*`` (see ``_shim.py`` for what each holds).
wf never waits on an agent itself: it starts the shim in a new session and reads the
shim's files, so an agent started by one wf process can be adopted by the next.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wf.errors import AgentSpawnError
from wf.gitx import FORGE_TOKENS  # wf's own secrets: never passed, whatever pass_env says

SHIM = Path(__file__).with_name("_shim.py")

# What an agent inherits from wf's environment. Everything else — forge tokens above all —
# stays out unless the agent's config names it in `env` or `pass_env`.
ENV_ALLOWLIST = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "COLORTERM",
    "NO_COLOR", "TMPDIR", "TZ", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
    "https_proxy", "no_proxy", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_SYSTEM",
})
ENV_PREFIX_ALLOWLIST = ("LC_", "XDG_")


def agent_environment(base: Mapping[str, str], *, wf_vars: Mapping[str, str],
                      extra: Mapping[str, str], pass_env: Sequence[str] = ()) -> dict[str, str]:
    """The environment an agent runs with: the allowlist of ``base``, the names in
    ``pass_env`` (``NAME_*`` passes every variable starting with ``NAME_``), the agent's own
    ``extra`` settings, then wf's ``WF_*`` variables. Forge tokens never pass through."""
    names = {p for p in pass_env if not p.endswith("*")}
    prefixes = (*ENV_PREFIX_ALLOWLIST, *(p[:-1] for p in pass_env if p.endswith("*")))
    env = {k: v for k, v in base.items()
           if (k in ENV_ALLOWLIST or k in names or k.startswith(prefixes))
           and k not in FORGE_TOKENS}
    env.update(extra)
    env.update(wf_vars)
    return env


def resolve_program(program: str, root: Path, path: str | None) -> str | None:
    """Where an agent's program is, or None: a name is looked up on ``path`` (the PATH the
    agent gets); a path with a slash must be an executable file, a relative one taken from
    ``root`` (the worktree holds the repository's files)."""
    if "/" not in program:
        return shutil.which(program, path=path)
    target = Path(program) if os.path.isabs(program) else root / program
    return str(target) if target.is_file() and os.access(target, os.X_OK) else None


def fill_placeholders(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Replace ``{prompt}``, ``{task_id}``, ``{worktree}``, ``{attempt}`` in each argument.

    One pass, not ``str.format``: other braces in an argument stay as they are, braces inside a
    substituted value are never expanded again, and a prompt is always exactly one argument,
    never split or shell-parsed."""
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return [pattern.sub(lambda m: values[m.group(0)[1:-1]], arg) for arg in command]


@dataclass(frozen=True)
class AttemptFiles:
    prefix: Path  # <logs>/<task>/<n>

    @classmethod
    def of(cls, logs_dir: Path, task_id: str, n: int) -> AttemptFiles:
        return cls(logs_dir / task_id / str(n))

    @property
    def log(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".log")

    @property
    def exit(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".exit")

    @property
    def claim(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".claim")

    def read_exit(self) -> dict | None:
        try:
            return json.loads(self.exit.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def read_claim(self) -> tuple[int, int] | None:
        """(pid, start time) of the shim, or None if it never claimed the attempt (or the
        claim is wf's own "lost" marker)."""
        try:
            pid, start = self.claim.read_text().split()
            return int(pid), int(start)
        except (FileNotFoundError, ValueError):
            return None

    def claim_as_lost(self) -> bool:
        """Take the claim so the shim, should it still start, runs nothing. True if taken."""
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        os.write(fd, b"lost\n")
        os.close(fd)
        return True

    def last_output(self) -> float | None:
        """Time of the last byte of output (the log's mtime), None before any."""
        try:
            st = self.log.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime if st.st_size else None

    def tail(self, max_bytes: int = 4096) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def process_starttime(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone or a
    zombie. Comparing it guards against a recycled pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start: int | None) -> bool:
    now = process_starttime(pid)
    return now is not None and (start is None or start == 0 or now == start)


def spawn(command: Sequence[str], *, cwd: Path, env: Mapping[str, str], files: AttemptFiles,
          max_log_bytes: int) -> subprocess.Popen[bytes]:
    """Start the shim (and through it the agent) in a session of its own."""
    files.prefix.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-S", "-E", str(SHIM), str(files.prefix), str(max_log_bytes), "--",
            *command]
    try:
        return subprocess.Popen(argv, cwd=cwd, env=dict(env), start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=True)
    except OSError as exc:
        raise AgentSpawnError(f"cannot start the agent supervisor: {exc}") from exc


def signal_group(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal the attempt's whole process group (the shim leads it). False if it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
