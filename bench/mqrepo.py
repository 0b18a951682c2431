"""The merge-queue benchmark's repository generator (used by bench/mqbench.py).

One call builds, with a single ``git fast-import``, a repository of ``NMOD`` small modules
``pkg/mNN.py`` and their tests, a shared ``registry.py``, a ``CHANGELOG.md`` with one slot per
branch, the check script ``check.py``, and branches ``agent/1..N`` of these kinds:

* ``good``: a new module ``pkg/feat_<i>.py`` with a test, and its changelog slot;
* ``bad``: changes ``fNN_b`` of a module of its own so that module's test fails;
* ``text``: a textual-conflict pair: both edit the same line of ``registry.py`` differently;
  the second in queue order cannot merge once the first is in (``conflict``);
* ``sem``: a semantic-conflict pair: role ``rename`` renames ``fXX_a`` in ``mXX`` and updates
  its callers (``m(XX-1)`` and the test); role ``call`` adds a new call of the old name in a
  module of its own, with a test. Each passes alone and both merge cleanly; together the check
  fails, so the later one in queue order must be evicted by the check.

Every branch also fills its own changelog slot; slots are separated by unchanged lines, so they
never conflict. Modules touched by ``bad`` and ``sem`` branches are exclusive to them.

``check.py`` sleeps ``CHECK_SLEEP`` seconds, then imports every ``tests/test_*.py`` and calls its
``test_*`` functions in-process (no pytest start-up). Flakiness: when ``<git common dir>/mq-flake``
holds ``{"p": P, "seed": S}`` (and ``MQ_NOFLAKE`` is not set), a run whose tests passed fails
anyway with probability P, printing a ``FLAKE`` line. The draw is seeded by ``S``, the tree
(``WF_CHECK_TREE``) and how many times that tree was checked before (an ``O_EXCL`` counter file
per run under ``<common>/mq-flake-runs``), so runs are independent yet a rerun of the benchmark
draws the same way for the same decisions. The check prints ``MQ-START``/``MQ-END`` wall-clock
stamps, which the benchmark uses to tell check time from queue overhead.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NMOD = 50
CHECK_SLEEP = 0.2
EPOCH = 1_700_000_000

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "mq bench", "GIT_AUTHOR_EMAIL": "mq@bench.invalid",
    "GIT_COMMITTER_NAME": "mq bench", "GIT_COMMITTER_EMAIL": "mq@bench.invalid",
    "GIT_AUTHOR_DATE": f"{EPOCH} +0000", "GIT_COMMITTER_DATE": f"{EPOCH} +0000",
}


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV)
    return env


def git(repo: Path, *args: str, check: bool = True, env: dict | None = None,
        input: str | None = None) -> str:
    proc = subprocess.run(["git", *args], check=False, cwd=repo, capture_output=True, text=True,
                          env=env or git_env(), input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


CHECK_PY = r'''"""The merge-queue benchmark's check: a fixed cost, then every test in-process."""
import glob, importlib, json, os, random, subprocess, sys, time, traceback

sys.dont_write_bytecode = True  # a stale .pyc (same size, same second) would hide a change
print(f"MQ-START {time.time():.6f}", flush=True)
time.sleep(SLEEP)
root = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, root)
failed = 0
for path in sorted(glob.glob(os.path.join(root, "tests", "test_*.py"))):
    name = "tests." + os.path.basename(path)[:-3]
    try:
        mod = importlib.import_module(name)
        tests = [getattr(mod, a) for a in sorted(dir(mod)) if a.startswith("test_")]
    except Exception:
        failed += 1
        print(f"FAIL {name} (import)\n{traceback.format_exc(limit=2)}")
        continue
    for test in tests:
        try:
            test()
        except Exception:
            failed += 1
            print(f"FAIL {name}.{test.__name__}\n{traceback.format_exc(limit=2)}")
flake = False
if not failed and not os.environ.get("MQ_NOFLAKE"):
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                            cwd=root, capture_output=True, text=True).stdout.strip()
    try:
        conf = json.load(open(os.path.join(common, "mq-flake")))
    except (OSError, ValueError):
        conf = {"p": 0.0}
    if conf.get("p"):
        tree = os.environ.get("WF_CHECK_TREE") or subprocess.run(
            ["git", "rev-parse", "HEAD^{tree}"], cwd=root, capture_output=True,
            text=True).stdout.strip()
        runs = os.path.join(common, "mq-flake-runs")
        os.makedirs(runs, exist_ok=True)
        n = 0
        while True:
            try:
                os.close(os.open(os.path.join(runs, f"{tree}.{n}"), os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                n += 1
        flake = random.Random(f"{conf.get('seed', 0)}:{tree}:{n}").random() < conf["p"]
        if flake:
            print(f"FLAKE tree={tree} run={n} p={conf['p']}")
print(f"MQ-END {time.time():.6f} failed={failed} flake={int(flake)}", flush=True)
sys.exit(1 if failed or flake else 0)
'''.replace("SLEEP", repr(CHECK_SLEEP))


def module_src(k: int, *, b_off: int = 0, a_name: str | None = None, extra: str = "") -> str:
    n = (k + 1) % NMOD
    a = a_name or f"f{k:02d}_a"
    return (f'"""Module m{k:02d} of pkg."""\n\n\n'
            f"def {a}(x):\n    return x + {k}\n\n\n"
            f"def f{k:02d}_b(x):\n    return x * 2 + {k + b_off}\n\n\n"
            f"def f{k:02d}_c(x):\n    return {a}(x) - 1\n\n\n"
            f"def f{k:02d}_d(x):\n    from pkg import m{n:02d}\n\n"
            f"    return m{n:02d}.{{NEXT_A}}(x) + 1\n"
            + extra)


def render_module(k: int, *, b_off: int = 0, a_name: str | None = None,
                  next_a: str | None = None, extra: str = "") -> str:
    n = (k + 1) % NMOD
    return module_src(k, b_off=b_off, a_name=a_name, extra=extra).replace(
        "{NEXT_A}", next_a or f"f{n:02d}_a")


def render_test(k: int, *, a_name: str | None = None, extra: str = "") -> str:
    n = (k + 1) % NMOD
    a = a_name or f"f{k:02d}_a"
    return (f"from pkg import m{k:02d}\n\n\n"
            f"def test_a():\n    assert m{k:02d}.{a}(1) == {1 + k}\n\n\n"
            f"def test_b():\n    assert m{k:02d}.f{k:02d}_b(1) == {2 + k}\n\n\n"
            f"def test_c():\n    assert m{k:02d}.f{k:02d}_c(1) == {k}\n\n\n"
            f"def test_d():\n    assert m{k:02d}.f{k:02d}_d(1) == {1 + n + 1}\n"
            + extra)


def render_registry(owners: dict[int, str] | None = None) -> str:
    owners = owners or {}
    lines = ['"""Every module of pkg, in order: the shared registry."""\n', "MODULES = ["]
    for k in range(NMOD):
        lines.append(f'    "m{k:02d}",' + (f"  # owner: {owners[k]}" if k in owners else ""))
    lines.append("]\n")
    return "\n".join(lines)


REGISTRY_TEST = ("import importlib\n\nfrom registry import MODULES\n\n\n"
                 "def test_registry():\n    assert len(MODULES) == len(set(MODULES))\n"
                 "    for name in MODULES:\n        importlib.import_module('pkg.' + name)\n")


def render_changelog(n: int, filled: dict[int, str] | None = None) -> str:
    filled = filled or {}
    out = ["# Changelog\n"]
    for i in range(1, n + 1):
        out.append(f"## agent/{i}\n- {filled.get(i, 'pending')}\n")
    return "\n".join(out)


@dataclass
class Branch:
    index: int  # 1-based: agent/<index>, enqueued in this order
    kind: str  # good | bad | text | sem
    pair: str | None = None  # text/sem pairs: a shared id
    role: str | None = None  # sem: rename | call; text: a | b
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def name(self) -> str:
        return f"agent/{self.index}"

    @property
    def entry(self) -> str:
        return f"agent-{self.index}"


@dataclass
class Scenario:
    name: str
    branches: list[Branch]
    flake: float = 0.0
    seed: int = 0

    def expected(self) -> dict[str, str]:
        """What an ideal queue does with each entry when nothing flakes, given queue order:
        ``landed``, ``check`` (evicted by the checks) or ``conflict``."""
        out: dict[str, str] = {}
        seen_pairs: set[str] = set()
        for b in sorted(self.branches, key=lambda b: b.index):
            if b.kind == "bad":
                out[b.entry] = "check"
            elif b.kind in ("text", "sem"):
                if b.pair in seen_pairs:
                    out[b.entry] = "conflict" if b.kind == "text" else "check"
                else:
                    seen_pairs.add(b.pair)
                    out[b.entry] = "landed"
            else:
                out[b.entry] = "landed"
        return out


def compose(name: str, kinds: list[tuple[str, str | None, str | None]], seed: int,
            flake: float) -> Scenario:
    """Give each branch its files. ``kinds``: (kind, pair, role) in queue order."""
    rng = random.Random(f"files:{name}:{seed}")
    free = list(range(NMOD))
    rng.shuffle(free)
    used: set[int] = set()

    def take(avoid: set[int] = frozenset(), need_prev: bool = False) -> int:
        for k in free:
            prev = (k - 1) % NMOD
            if k in used or k in avoid or (need_prev and (prev in used or prev in avoid)):
                continue
            used.add(k)
            if need_prev:
                used.add(prev)
            return k
        raise ValueError("not enough modules for the special branches")

    branches = [Branch(i + 1, k, p, r) for i, (k, p, r) in enumerate(kinds)]
    n = len(branches)
    text_lines: dict[str, int] = {}
    sem_x: dict[str, int] = {}
    for b in branches:  # the modules a semantic pair renames are reserved first
        if b.kind == "sem" and b.pair not in sem_x:
            sem_x[b.pair] = take(need_prev=True)
    for b in branches:
        i = b.index
        slot = f"{b.name}: "
        if b.kind == "good":
            b.files[f"pkg/feat_{i}.py"] = f"def feat_{i}(x):\n    return x * {i} + 1\n"
            b.files[f"tests/test_feat_{i}.py"] = (
                f"from pkg.feat_{i} import feat_{i}\n\n\n"
                f"def test_feat_{i}():\n    assert feat_{i}(2) == {2 * i + 1}\n")
            b.note = f"feat_{i}"
        elif b.kind == "bad":
            k = take()
            b.files[f"pkg/m{k:02d}.py"] = render_module(k, b_off=1)
            b.note = f"breaks m{k:02d}.f{k:02d}_b"
        elif b.kind == "text":
            if b.pair not in text_lines:  # registry lines 3 apart: edits never touch
                text_lines[b.pair] = 2 + 3 * len(text_lines)
            line = text_lines[b.pair]
            b.files["registry.py"] = render_registry({line: b.name})
            b.note = f"registry line m{line:02d} ({b.pair})"
        elif b.kind == "sem":
            x = sem_x[b.pair]
            prev = (x - 1) % NMOD
            new = f"f{x:02d}_a_v2"
            if b.role == "rename":
                b.files[f"pkg/m{x:02d}.py"] = render_module(x, a_name=new)
                b.files[f"tests/test_m{x:02d}.py"] = render_test(x, a_name=new)
                b.files[f"pkg/m{prev:02d}.py"] = render_module(prev, next_a=new)
                b.note = f"renames m{x:02d}.f{x:02d}_a ({b.pair})"
            else:
                y = take(avoid={x, prev})
                extra = (f"\n\ndef f{y:02d}_uses_{x:02d}(x):\n    from pkg import m{x:02d}\n\n"
                         f"    return m{x:02d}.f{x:02d}_a(x) * 3\n")
                b.files[f"pkg/m{y:02d}.py"] = render_module(y, extra=extra)
                b.files[f"tests/test_m{y:02d}.py"] = render_test(y, extra=(
                    f"\n\ndef test_uses_{x:02d}():\n"
                    f"    assert m{y:02d}.f{y:02d}_uses_{x:02d}(1) == {3 * (1 + x)}\n"))
                b.note = f"calls m{x:02d}.f{x:02d}_a from m{y:02d} ({b.pair})"
        else:
            raise ValueError(b.kind)
        b.files["CHANGELOG.md"] = render_changelog(n, {i: slot + (b.note or b.kind)})
    return Scenario(name, branches, flake, seed)


def scenario(name: str, seed: int, n_stream: int = 200) -> Scenario:
    """The benchmark's scenarios (compositions as in bench/mqsim.py)."""
    rng = random.Random(f"{name}:{seed}")
    if name == "S1":
        kinds = [("good", None, None)] * 50
        return compose(name, kinds, seed, 0.0)
    if name in ("S2", "S3"):
        kinds = [("good", None, None)] * 45 + [("bad", None, None)] * 5
        rng.shuffle(kinds)
        return compose(name, kinds, seed, 0.05 if name == "S3" else 0.0)
    if name == "S4":
        kinds = [("good", None, None)] * 30 + [("bad", None, None)] * 4
        for p in range(2):
            kinds += [("sem", f"sem{p}", "rename"), ("sem", f"sem{p}", "call")]
        for p in range(3):
            kinds += [("text", f"text{p}", "a"), ("text", f"text{p}", "b")]
        rng.shuffle(kinds)
        return compose(name, kinds, seed, 0.02)
    if name == "S6":
        kinds = [("bad" if rng.random() < 0.05 else "good", None, None) for _ in range(n_stream)]
        return compose(name, kinds, seed, 0.0)
    raise ValueError(name)


def base_files(n_branches: int) -> dict[str, str]:
    files = {"pkg/__init__.py": "", "tests/__init__.py": "",
             ".gitignore": "__pycache__/\n/wf.toml\n",
             "check.py": CHECK_PY, "registry.py": render_registry(),
             "tests/test_registry.py": REGISTRY_TEST,
             "CHANGELOG.md": render_changelog(n_branches)}
    for k in range(NMOD):
        files[f"pkg/m{k:02d}.py"] = render_module(k)
        files[f"tests/test_m{k:02d}.py"] = render_test(k)
    return files


def _fi_commit(ref: str, mark: int, msg: str, files: dict[str, str], parent: int | None) -> str:
    who = f"mq bench <mq@bench.invalid> {EPOCH} +0000"
    out = [f"commit {ref}", f"mark :{mark}", f"author {who}", f"committer {who}"]
    data = msg.encode()
    out.append(f"data {len(data)}\n{msg}")
    if parent is not None:
        out.append(f"from :{parent}")
    for path, text in sorted(files.items()):
        blob = text.encode()
        out.append(f"M 100644 inline {path}\ndata {len(blob)}\n{text}")
    return "\n".join(out) + "\n\n"


def build(sc: Scenario, repo: Path) -> str:
    """Create the repository at ``repo`` (checked out on ``main``); return the base commit."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    stream = [_fi_commit("refs/heads/main", 1, "base: pkg, tests, registry, changelog\n",
                         base_files(len(sc.branches)), None)]
    for b in sc.branches:
        stream.append(_fi_commit(f"refs/heads/{b.name}", b.index + 1,
                                 f"{b.name}: {b.kind} {b.note}\n", b.files, 1))
    proc = subprocess.run(["git", "fast-import", "--quiet"], check=False, cwd=repo,
                          input="".join(stream), text=True, capture_output=True, env=git_env())
    if proc.returncode != 0:
        raise RuntimeError(f"git fast-import failed: {proc.stderr}")
    git(repo, "checkout", "-q", "-f", "main")
    return git(repo, "rev-parse", "main")


def set_flake(repo: Path, p: float, seed: int) -> None:
    common = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    (common / "mq-flake").write_text(json.dumps({"p": p, "seed": seed}))
