"""A fake GitHub and a fake GitLab: one threaded HTTP server on 127.0.0.1 with in-memory state.

GitHub's API is served under ``/api/v3`` (as GitHub Enterprise Server does) and GitLab's under
``/gitlab`` (a self-hosted GitLab on a relative root, so ``/gitlab/api/v4/...``). Branch heads are
read from real bare repositories, and a merge is a real merge commit written into them, so wf's
pushes, fetches and the merge queue see a real remote move.

Every request wf sends and every response the fake returns is validated against the official
descriptions in ``tests/openapi`` (``openapi-core``); a mismatch is answered with 400 and
kept in ``errors``, which the fixture asserts empty. GitHub responses start from the examples of
the description (URLs rewritten to this server), so they carry every field the schema requires.

Tests steer it with ``fail(...)`` (answer a status once, optionally after a delay, e.g. 401, 403
with a secondary-limit message, 404, 405, 409, 422, 429 with Retry-After, 500; a 2xx with no body
is the normal answer, only slow; a 2xx with a body answers that body, e.g. a stale empty list),
and by setting statuses, check runs, pipelines and ``mergeable`` on PRs/MRs.

A project's ``ci`` plays a CI that reports on every pushed head by itself, as the forge's own CI
would: ``None`` entries in it, or ``ci_delay`` seconds (measured by the server from its first
look at the head), are the time before the forge has created the pipeline or check run at all.
``ci_as`` chooses how GitHub shows it (a commit status or a check run); ``merged_results`` runs
GitLab's pipeline on the MR's merge ref, so it shows only as the MR's ``head_pipeline`` and in
its pipeline list under the merge commit's sha, never under the head's.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fakeforge_github
import fakeforge_gitlab

SPEC_DIR = Path(__file__).parent / "openapi"  # copies of the official descriptions
TOKEN = "wf-test-token-5b1f0c9e7a"  # distinctive, so a leak is easy to find
GITHUB_PREFIX = "/api/v3"
GITLAB_PREFIX = "/gitlab"
GIT_PREFIX = "/git/"  # smart HTTP: /git/<name>.git/... served by `git http-backend`
SPEC_HOSTS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com"}


# -- validation ------------------------------------------------------------------------------

class Specs:
    """Both OpenAPI documents, loaded once per test session (loading takes ~0.5 s)."""

    def __init__(self) -> None:
        from openapi_core import OpenAPI

        self.raw = {kind: json.loads((SPEC_DIR / f"{kind}.json").read_text())
                    for kind in ("github", "gitlab")}
        self.api = {kind: OpenAPI.from_dict(raw) for kind, raw in self.raw.items()}

    def example(self, path: str, method: str, status: str) -> Any:
        content = self.raw["github"]["paths"][path][method]["responses"][status]["content"]
        media = content["application/json"]
        example = media.get("example") or next(iter(media["examples"].values()))
        if "$ref" in example:  # "#/components/examples/NAME"
            example = self.raw["github"]["components"]["examples"][example["$ref"].split("/")[-1]]
        return copy.deepcopy(example.get("value", example))


class _Req:
    def __init__(self, kind: str, method: str, path: str, query: str, headers: dict[str, str],
                 body: bytes) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url, self.path, self.method = SPEC_HOSTS[kind], path, method.lower()
        self.body = body or None
        self.content_type = headers.get("Content-Type", "application/json").split(";")[0]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            header=Headers(headers), cookie=ImmutableMultiDict())


class _Resp:
    def __init__(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.status_code, self.data = status, data
        self.content_type = "application/json"
        from werkzeug.datastructures import Headers

        self.headers = Headers(headers)


# -- state -----------------------------------------------------------------------------------

@dataclass
class Fault:
    method: str
    path: str  # a regular expression searched in the request path
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay: float = 0.0


@dataclass
class Pull:
    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool = False
    state: str = "open"  # open / closed / merged
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    mergeable: bool = True
    merge_commit: str | None = None
    auto_merge: bool = False
    merge_status: str = "mergeable"  # GitLab detailed_merge_status


@dataclass
class Project:
    """A GitHub repository or a GitLab project, backed by a bare git repository."""

    path: str
    bare: Path
    pulls: dict[int, Pull] = field(default_factory=dict)
    comments: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (number, body)
    statuses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # sha -> (ctx, state)
    check_runs: dict[str, list[tuple[str, str, str | None]]] = field(default_factory=dict)
    pipelines: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # sha -> (id, st)
    # A CI that reports on every head by itself: the n-th look at a head sees ci[n] (the last
    # value repeats): "pending", "success", "failure", or None (nothing created yet).
    ci: list[str | None] = field(default_factory=list)
    ci_polls: dict[str, int] = field(default_factory=dict)
    ci_delay: float = 0.0  # seconds from the first look at a head until its CI exists
    ci_first_seen: dict[str, float] = field(default_factory=dict)
    ci_as: str = "status"  # GitHub: "status" (commit status) or "check_run"
    merged_results: bool = False  # GitLab: the pipeline runs on the MR's merge ref
    mergeable_by_default: bool = True

    def ci_state(self, sha: str, *, look: bool = True) -> str | None:
        """What the CI shows on ``sha`` now; ``look`` counts this as one poll of the script."""
        if not self.ci:
            return None
        first = self.ci_first_seen.setdefault(sha, time.monotonic())
        if time.monotonic() - first < self.ci_delay:
            return None
        n = self.ci_polls.get(sha, 0)
        if look:
            self.ci_polls[sha] = n + 1
        return self.ci[min(n, len(self.ci) - 1)]

    def head_of(self, branch: str) -> str | None:
        proc = subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
                              cwd=self.bare, capture_output=True, text=True)
        return proc.stdout.strip() or None

    def merge(self, pull: Pull, method: str) -> str:
        """Merge the PR's head into its base inside the bare repository, like the forge does."""
        base, head = self.head_of(pull.base), self.head_of(pull.head)

        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=self.bare, capture_output=True, text=True,
                                  check=True).stdout.strip()

        tree = git("merge-tree", "--write-tree", base, head).splitlines()[0]
        parents = ["-p", base] if method in ("squash", "rebase") else ["-p", base, "-p", head]
        commit = git("commit-tree", tree, *parents, "-m", f"Merge #{pull.number}: {pull.title}")
        git("update-ref", f"refs/heads/{pull.base}", commit, base)
        return commit


class FakeForge:
    def __init__(self, specs: Specs, token: str) -> None:
        self.specs, self.token = specs, token
        self.github: dict[str, Project] = {}
        self.gitlab: dict[str, Project] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str, Any]] = []  # method, raw path, query, json
        self.errors: list[str] = []
        self.git_roots: dict[str, Path] = {}
        self.git_auth: list[bool] = []  # one entry per git request: did it carry the token?
        self.lock = threading.RLock()
        self.ids = itertools.count(1000)
        forge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                try:
                    forge._serve(self)
                except Exception as exc:  # a bug in the fake: fail the test, answer 500
                    forge.errors.append(f"fake forge crashed on {self.command} {self.path}: "
                                        f"{type(exc).__name__}: {exc}")
                    forge._send(self, 500, {"message": "fake forge bug"}, {})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def github_api(self) -> str:
        return self.base + GITHUB_PREFIX

    @property
    def gitlab_url(self) -> str:
        return self.base + GITLAB_PREFIX

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- steering -----------------------------------------------------------------------------
    def add_github(self, path: str, bare: Path) -> Project:
        self.github[path] = Project(path, bare)
        return self.github[path]

    def add_gitlab(self, path: str, bare: Path) -> Project:
        self.gitlab[path] = Project(path, bare)
        return self.gitlab[path]

    def fail(self, method: str, path: str, status: int, body: Any = None, *,
             headers: dict[str, str] | None = None, times: int = 1, delay: float = 0.0) -> None:
        with self.lock:
            self.faults.append(Fault(method, path, status, body, headers or {}, times, delay))

    def calls(self, method: str, pattern: str = "") -> list[tuple[str, str, str, Any]]:
        return [r for r in self.requests if r[0] == method and re.search(pattern, r[1])]

    # -- serving ------------------------------------------------------------------------------
    def git_url(self, bare: Path) -> str:
        """An https-like remote URL for ``bare``, served with Basic auth (any user, the token
        as password), as forges serve git over HTTP."""
        self.git_roots[bare.name] = bare
        return f"{self.base}{GIT_PREFIX}{bare.name}"

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        raw_path, _, query = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if raw_path.startswith(GIT_PREFIX):
            self._serve_git(h, raw_path, query, body)
            return
        kind = "github" if raw_path.startswith(GITHUB_PREFIX) else "gitlab"
        path = raw_path[len(GITHUB_PREFIX if kind == "github" else GITLAB_PREFIX):] or "/"
        headers = {k: v for k, v in h.headers.items()}
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        with self.lock:
            self.requests.append((h.command, raw_path, query, data))
        req = _Req(kind, h.command, path, query, headers, body)
        problem = self._validate_request(kind, req)
        if problem:
            self._send(h, 400, {"message": problem}, {})
            return
        status, payload, extra, validate = self._answer(kind, h.command, path, query, headers,
                                                        data)
        out = b"" if payload is None else json.dumps(payload).encode()
        if validate:
            self._validate_response(kind, req, _Resp(status, out, {"Content-Type":
                                                                   "application/json"}))
        self._send(h, status, payload, extra)

    def _serve_git(self, h: BaseHTTPRequestHandler, raw_path: str, query: str,
                   body: bytes) -> None:
        name, _, rest = raw_path[len(GIT_PREFIX):].partition("/")
        bare = self.git_roots.get(name)
        auth = h.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            user_pass = base64.b64decode(auth[6:]).decode()
            ok = user_pass.partition(":")[2] == self.token
        self.git_auth.append(ok)
        if bare is None or not ok:
            h.send_response(401 if bare is not None else 404)
            h.send_header("WWW-Authenticate", 'Basic realm="fake forge"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        env = {"PATH": os.environ.get("PATH", ""), "GIT_PROJECT_ROOT": str(bare.parent),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": f"/{bare.name}/{rest}",
               "REQUEST_METHOD": h.command, "QUERY_STRING": query, "REMOTE_USER": "wf",
               "CONTENT_TYPE": h.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(bare.parent)}
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value))
        h.send_response(status)
        for key, value in headers:
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _validate_request(self, kind: str, req: _Req) -> str | None:
        try:
            self.specs.api[kind].validate_request(req)
        except Exception as exc:  # noqa: BLE001 - every validation failure is a finding
            msg = f"request {req.method.upper()} {req.path}: {_why(exc)}"
            self.errors.append(msg)
            return msg
        return None

    def _validate_response(self, kind: str, req: _Req, resp: _Resp) -> None:
        try:
            self.specs.api[kind].validate_response(req, resp)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"response {resp.status_code} to {req.method.upper()} "
                               f"{req.path}: {_why(exc)}")

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: Any,
              extra: dict[str, str]) -> None:
        out = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(out)))
        for k, v in extra.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(out)

    def _answer(self, kind: str, method: str, path: str, query: str, headers: dict[str, str],
                data: Any) -> tuple[int, Any, dict[str, str], bool]:
        """(status, JSON body, extra headers, whether to validate the response)."""
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status < 400 and fault.body is None:  # a slow but otherwise normal answer
                fault = None
            else:
                body = fault.body if fault.body is not None else {"message": f"fake {fault.status}"}
                return fault.status, body, fault.headers, self._declared(kind, method, path,
                                                                         fault.status)
        if not self._authorized(kind, headers):
            body = ({"message": "Bad credentials",
                     "documentation_url": "https://docs.github.com/rest"}
                    if kind == "github" else {"message": "401 Unauthorized"})
            return 401, body, {}, self._declared(kind, method, path, 401)
        answer = fakeforge_github.answer if kind == "github" else fakeforge_gitlab.answer
        with self.lock:
            status, payload = answer(self, method, path, urllib.parse.parse_qs(query), data)
        return status, payload, {}, True

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.method == method and re.search(f.path, path) and f.times > 0:
                    f.times -= 1
                    return f
        return None

    def _authorized(self, kind: str, headers: dict[str, str]) -> bool:
        if kind == "github":
            value = headers.get("Authorization", "")
            return value in (f"token {self.token}", f"Bearer {self.token}")
        return headers.get("PRIVATE-TOKEN") == self.token

    def _declared(self, kind: str, method: str, path: str, status: int) -> bool:
        """Whether the operation documents ``status`` (an injected fault it does not document
        cannot be validated, only sent)."""
        for template, ops in self.specs.raw[kind]["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in ops:
                return str(status) in ops[method.lower()].get("responses", {})
        return False


def _why(exc: Exception) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    while cause is not None:
        parts.append(str(cause)[:300])
        for sub in getattr(cause, "schema_errors", ()) or ():
            parts.append(f"{list(sub.absolute_path)}: {sub.message}"[:300])
        cause = cause.__cause__
    return " | ".join(parts)


def push_feature(repo: Path, branch: str = "wf/feature", files: dict[str, str] | None = None
                 ) -> str:
    """Commit ``files`` on a new ``branch`` off main, push it to origin, return its sha."""
    from helpers import commit_files, git

    git(repo, "checkout", "--quiet", "-b", branch, "main")
    sha = commit_files(repo, files or {"feature.txt": f"{branch}\n"}, f"work on {branch}")
    git(repo, "push", "--quiet", "origin", branch)
    git(repo, "checkout", "--quiet", "main")
    return sha
