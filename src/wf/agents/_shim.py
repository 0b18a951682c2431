"""Supervisor for one agent attempt; run as ``python -S -E _shim.py PREFIX MAX_BYTES -- ARGV...``.

It is what lets an agent outlive wf: wf starts it in a new session, and it (not wf) owns the
agent's output and exit status, so ``kill -9`` of wf loses neither.

- ``PREFIX.claim`` is created with O_EXCL before the agent starts and holds "PID STARTTIME".
  If the claim already exists (``wf resume`` declared this attempt lost), the shim runs nothing:
  an attempt can never be both lost and running.
- The agent's stdout and stderr go to ``PREFIX.log`` as they arrive (two pipes: lines written
  to both within one read may come out in either order); past MAX_BYTES it is rotated to
  ``PREFIX.log.1`` (one generation kept), so a flood cannot fill the disk.
- ``PREFIX.exit`` is written atomically (write, fsync, rename) with a JSON object holding
  ``exit_code`` (negative: killed by that signal), ``stderr_tail`` (the last few KB the agent
  wrote to stderr: what "last error" shows first) and, if the agent could not be started,
  ``spawn_error``.

Stdlib only, started with -S so it imports nothing from site-packages: it starts in ~15 ms.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time

ERR_TAIL = 4096  # bytes of the agent's stderr kept for "last error"

def _starttime(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def _write_exit(prefix, record):
    tmp = prefix + ".exit.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, prefix + ".exit")


class _Log:
    def __init__(self, path, max_bytes):
        self.path, self.max_bytes = path, max_bytes
        self.f = open(path, "ab", buffering=0)
        self.size = self.f.tell()

    def write(self, data):
        if self.size + len(data) > self.max_bytes and self.size:
            self.f.close()
            os.replace(self.path, self.path + ".1")
            self.f = open(self.path, "ab", buffering=0)
            self.size = 0
        self.f.write(data)
        self.size += len(data)


def main(argv):
    prefix, max_bytes, sep, command = argv[1], int(argv[2]), argv[3], argv[4:]
    if sep != "--" or not command:
        print("usage: _shim.py PREFIX MAX_BYTES -- ARGV...", file=sys.stderr)
        return 2
    # wf stops an attempt by signalling the whole process group; the shim must outlive the
    # agent to record its exit, so this comes before the claim that makes it visible. A Python
    # handler (not SIG_IGN) is reset to default on exec: the agent keeps the default.
    # A signal that comes before the agent exists is remembered and passed on to it.
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    try:
        fd = os.open(prefix + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return 0  # this attempt was given up as lost before we started: run nothing
    pid = os.getpid()
    try:
        start = _starttime(pid)
    except OSError:
        start = 0
    os.write(fd, f"{pid} {start}\n".encode())
    os.fsync(fd)
    os.close(fd)

    log = _Log(prefix + ".log", max_bytes)
    if stop:  # stopped before the agent started: never start it
        _write_exit(prefix, {"exit_code": -stop[0], "ended": time.time()})
        return 0
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, close_fds=True)
    except OSError as exc:
        msg = f"wf: cannot start agent {command[0]!r}: {exc.strerror or exc}"
        log.write(msg.encode() + b"\n")
        _write_exit(prefix, {"exit_code": 127, "spawn_error": msg, "ended": time.time()})
        return 0

    if stop:
        child.send_signal(stop[0])
    # Both streams go to the one log, in the order they arrive; stderr's tail is kept apart.
    err = child.stderr.fileno()
    err_tail = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(child.stdout.fileno(), selectors.EVENT_READ)
    sel.register(err, selectors.EVENT_READ)
    drain_until = None
    while sel.get_map():
        # After the agent exits, keep reading briefly: a background child it left behind may
        # hold the pipe open forever, and that must not keep the attempt from ending.
        if drain_until is None and child.poll() is not None:
            drain_until = time.monotonic() + 2.0
        if drain_until is not None and time.monotonic() > drain_until:
            break
        for key, _ in sel.select(timeout=0.2):
            try:
                data = os.read(key.fd, 65536)
            except InterruptedError:
                continue
            if not data:
                sel.unregister(key.fd)
                continue
            log.write(data)
            if key.fd == err:
                err_tail = (err_tail + data)[-ERR_TAIL:]
    code = child.wait()
    log.f.close()
    _write_exit(prefix, {"exit_code": code, "ended": time.time(),
                         "stderr_tail": err_tail.decode("utf-8", "replace")})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
