"""`wf pr` end to end: the real CLI, a real task, a push over smart HTTP that needs the token,
and the fake GitHub (served as GitHub Enterprise) or GitLab (self-hosted, nested group)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fakeforge import TOKEN, FakeForge
from helpers import git
from runwf import events, status, wf

PROMPT = "echo hello > hello.txt"
TASK = "echo-hello-hello-txt-1"
NO_TOKENS = {name: "" for name in ("GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN",
                                   "GITHUB_ENTERPRISE_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN")}


def configure(repo: Path, origin: Path, forge: FakeForge, kind: str) -> dict[str, str]:
    """Point ``origin`` at the fake's smart-HTTP URL for the bare repository, write the
    [provider] table, and return the environment holding the token."""
    git(repo, "remote", "set-url", "origin", forge.git_url(origin))
    if kind == "github":
        forge.add_github("octo/demo", origin)
        provider = f'kind = "github"\napi_url = "{forge.github_api}"\nrepo = "octo/demo"\n'
        env = {**NO_TOKENS, "GH_TOKEN": TOKEN}
    else:
        forge.add_gitlab("grp/sub/demo", origin)
        provider = f'kind = "gitlab"\napi_url = "{forge.gitlab_url}"\nrepo = "grp/sub/demo"\n'
        env = {**NO_TOKENS, "GITLAB_TOKEN": TOKEN}
    (repo / "wf.toml").write_text(f"[provider]\n{provider}")
    git(repo, "add", "wf.toml")
    git(repo, "commit", "-qm", "provider config")
    return env


def finished_task(repo: Path) -> str:
    proc = wf(repo, "run", "-p", PROMPT, "--agent", "shell")
    assert proc.returncode == 0, proc.stderr
    return TASK


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_wf_pr_opens_then_updates_the_same_pr(repo: Path, origin: Path, forge: FakeForge,
                                              kind: str) -> None:
    env = configure(repo, origin, forge, kind)
    task = finished_task(repo)
    reviewer = "octocat" if kind == "github" else "42"
    proc = wf(repo, "pr", task, "--draft", "--label", "wf", "--reviewer", reviewer, "--json",
              env=env)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert (first["number"], first["created"], first["state"]) == (1, True, "draft")
    assert first["url"].startswith(forge.base)
    # the branch really went to the remote, over HTTP, with the token
    assert git(origin, "rev-parse", f"wf/{task}") == git(repo, "rev-parse", f"wf/{task}")
    assert forge.git_auth and forge.git_auth[-1] is True

    again = json.loads(wf(repo, "pr", task, "--json", env=env).stdout)
    assert (again["number"], again["created"]) == (1, False)
    project = (forge.github if kind == "github" else forge.gitlab)[
        "octo/demo" if kind == "github" else "grp/sub/demo"]
    assert len(project.pulls) == 1
    pull = project.pulls[1]
    assert pull.labels == ["wf"] and pull.reviewers == [reviewer]
    assert PROMPT in pull.body and "hello.txt" in pull.body  # the prompt and the diff stat
    assert len([c for c in project.comments.values() if c[0] == 1]) == 1  # one status comment

    row = status(repo)[task]
    assert (row["pr_number"], row["pr_url"], row["pr_state"]) == (1, first["url"], "draft")
    assert [e["data"]["created"] for e in events(repo, "pr.opened")] == [True, False]
    assert "pr" in wf(repo, "status").stdout.splitlines()[0].split()  # the PR column appears
    human = wf(repo, "pr", task, env=env)
    assert human.returncode == 0 and "updated" in human.stdout and first["url"] in human.stdout


def test_wf_pr_without_a_token_is_one_line_naming_the_variables(repo: Path, origin: Path,
                                                                forge: FakeForge) -> None:
    configure(repo, origin, forge, "github")
    task = finished_task(repo)
    proc = wf(repo, "pr", task, env={**NO_TOKENS, "PATH": os.environ["PATH"]})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "wf: error: no GitHub token for 127.0.0.1: set GH_TOKEN, GITHUB_TOKEN, "
        "GH_ENTERPRISE_TOKEN or GITHUB_ENTERPRISE_TOKEN, or log in with "
        "`gh auth login --hostname 127.0.0.1`"]
    rejected = wf(repo, "pr", task, env={**NO_TOKENS, "GH_TOKEN": "expired"})
    assert rejected.returncode == 2 and len(rejected.stderr.splitlines()) == 1
    assert "rejected the github token from GH_TOKEN" in rejected.stderr
    assert "expired" not in rejected.stderr


def test_wf_pr_on_an_unknown_task_or_forge(repo: Path, origin: Path, forge: FakeForge) -> None:
    env = configure(repo, origin, forge, "gitlab")
    finished_task(repo)
    proc = wf(repo, "pr", "nope", env=env)
    assert proc.returncode == 2 and "no task 'nope'" in proc.stderr
    (repo / "wf.toml").write_text('[provider]\nkind = "gitea"\n')
    proc = wf(repo, "pr", TASK, env=env)
    assert proc.returncode == 2
    assert "unknown provider kind 'gitea'; known: github, gitlab" in proc.stderr


def git_recorder(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``git`` first on PATH that appends its argv to a file, then runs the real git."""
    shim_dir, record = tmp_path / "shim", tmp_path / "git-argv.log"
    shim_dir.mkdir()
    real = next(Path(d) / "git" for d in os.environ["PATH"].split(os.pathsep)
                if (Path(d) / "git").is_file())
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\nexec "{real}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{shim_dir}{os.pathsep}{os.environ['PATH']}"}, record


def test_the_token_never_reaches_the_log_files_arguments_or_agents(
        repo: Path, origin: Path, forge: FakeForge, tmp_path: Path) -> None:
    env = configure(repo, origin, forge, "github")
    path_env, argv_log = git_recorder(tmp_path)
    env_dump, hook_dump = tmp_path / "agent-env.txt", tmp_path / "hook-env.txt"
    commit_hook_dump = tmp_path / "post-commit-env.txt"
    # The agent writes hooks into the hooks folder every worktree shares: a pre-push hook must
    # not run in the git process that holds the token, and the post-commit hook that runs when
    # wf commits the agent's work must not see wf's GH_TOKEN.
    hooks = "$(git rev-parse --git-common-dir)/hooks"
    prompt = (f"env > {env_dump}; "
              f"printf '#!/bin/sh\\nenv > {hook_dump}\\n' > \"{hooks}/pre-push\"; "
              f"printf '#!/bin/sh\\nenv > {commit_hook_dump}\\n' > \"{hooks}/post-commit\"; "
              f"chmod +x \"{hooks}/pre-push\" \"{hooks}/post-commit\"; echo hi > hi.txt")
    run = wf(repo, "run", "-p", prompt, "--agent", "shell", env={**env, **path_env})
    assert run.returncode == 0, run.stderr
    task = next(iter(status(repo)))
    proc = wf(repo, "pr", task, "--json", env={**env, **path_env})
    assert proc.returncode == 0, proc.stderr
    assert forge.git_auth[-1] is True  # the push did authenticate with the token

    state = repo / ".git" / "wf"
    scanned = [p for p in state.rglob("*") if p.is_file()]  # wf.db, -wal, logs, claims
    assert any(p.name == "wf.db" for p in scanned) and any(p.suffix == ".log" for p in scanned)
    assert commit_hook_dump.exists()  # wf's commit of the agent's work ran the hook
    leaks = [str(p) for p in [*scanned, argv_log, env_dump, commit_hook_dump]
             if TOKEN.encode() in p.read_bytes()]
    assert leaks == []
    assert "push" in argv_log.read_text()  # the recorder did see wf's git calls
    assert TOKEN not in run.stdout + run.stderr + proc.stdout + proc.stderr
    assert "GH_TOKEN" not in env_dump.read_text()
    assert not hook_dump.exists()
    git(repo, "push", "-q", str(origin), "main:refs/heads/probe")  # the control: it does run
    assert hook_dump.exists()


def test_the_credential_helper_answers_git_from_the_environment(tmp_path: Path) -> None:
    from wf.gitx import credential_args, run_git

    opts, env = credential_args(("x-access-token", "s3cret"))
    assert "s3cret" not in " ".join(opts)
    out = run_git([*opts, "credential", "fill"], cwd=tmp_path, env=env,
                  input="protocol=https\nhost=forge.example\n\n").stdout
    assert "username=x-access-token" in out.splitlines()
    assert "password=s3cret" in out.splitlines()


def test_json_output_lists_pr_fields_even_before_any_pr(repo: Path) -> None:
    proc = wf(repo, "run", "-p", PROMPT, "--agent", "shell")
    assert proc.returncode == 0, proc.stderr
    row = status(repo)[TASK]
    fields = ("pr_url", "pr_number", "pr_state", "forge_checks")
    assert {k: row[k] for k in fields} == dict.fromkeys(fields)
