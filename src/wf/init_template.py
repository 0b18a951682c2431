"""The commented wf.toml that ``wf init`` writes."""

INIT_TEMPLATE = '''\
# wf configuration. Every key below shows its default; change what you need.
# Precedence: this file < WF_* environment variables < a tasks file's own keys < flags.
# Durations take a number of seconds or text like "90s", "5m", "1h30m"; 0 means no limit.

# Tasks running at once.
max_parallel = 4

# Ref tasks start from (default: the current branch).
# base = "main"

# Agent for tasks that name none: an [agents.NAME] below or a built-in one (shell, demo, ...).
# agent = "shell"

# Folder for task worktrees, relative to the repository root; {repo} is the repo's folder name.
worktree_root = "../{repo}.worktrees"

# WF_PORT, given to each agent, is picked from this range of ports.
port_range = [20000, 29999]

# Command (argv, no shell) run once in each new worktree, e.g. to install dependencies.
# setup = ["uv", "sync"]

# Whole-attempt timeout.
timeout = "1h"

# An attempt that prints nothing for this long is stopped.
no_output_timeout = "15m"

# Size cap of each agent log, in bytes.
log_max_bytes = 20971520

# How failed attempts are retried (Temporal's retry policy fields, plus jitter).
[retry]
# Attempts in all, retries included; 0 for no limit.
maximum_attempts = 3
# Delay before the first retry.
initial_interval = "5s"
# Each further delay is the previous one times this.
backoff_coefficient = 2.0
# Cap on one delay.
maximum_interval = "5m"
# Random spread of each delay, a fraction of it.
jitter = 0.2
# Failure kinds that are never retried: transient, lost, infra, agent_error, no_changes,
# timeout, no_output_timeout, setup_error (config_error is never retried anyway).
non_retryable = ["config_error"]

# The merge queue: lands finished branches on `target`, but only through a commit whose exact
# tree passed every check. It is off until you enable it (auto, check or require_approval).
[merge]
# Branch to land on (default: the base branch).
# target = "main"
# Check commands (argv, no shell), run on the merged result; all must exit 0. One command,
# or several: check = [["ruff", "check", "."], ["pytest", "-q", "-x"]]
check = []
# Timeout of one check command.
check_timeout = "30m"
# "local" moves the target branch in this repository; "push" pushes it to `remote` with a lease;
# "pr" pushes the branch, opens or updates its PR/MR, waits for the forge's checks and merges it
# there with the tested head SHA (see [provider] and docs/providers.md).
land = "local"
remote = "origin"
# With land = "pr": "merge", "squash" or "rebase"; hand the merge to the forge once its checks
# pass (GitLab auto-merge); how long to wait for the forge's checks, and how often to look.
merge_method = "merge"
auto_merge = false
forge_check_timeout = "1h"
forge_poll_interval = "10s"
# A head the forge reports nothing on is never a pass: when it holds CI configuration
# (.gitlab-ci.yml, .github/workflows) wf waits for its checks; when it holds none, this long.
forge_checks_grace = "10s"
# Enqueue every task that succeeds; `wf run` then exits 0 only when every task landed.
auto = false
# Hold every entry until `wf approve TASK` (`wf reject TASK --reason ...` sends it back).
require_approval = false
# At most this many entries tested together, and this many checks at once.
max_batch = 50
max_parallel_checks = 2
# On a conflict, merge the target into the task's branch and run its agent again to resolve
# the conflicts it leaves (one resolution, not one per commit as a rebase would need).
resolve_conflicts = false
# When a check fails, test first the entries whose changed files its output names (a hint:
# an entry is still evicted only by check results).
blame = true

# The forge `wf pr` and land = "pr" talk to. github.com and gitlab.com are detected from the
# remote's URL; any other host needs kind (and api_url when the API is not at the usual place:
# https://HOST/api/v3 for GitHub Enterprise, https://HOST for GitLab). Tokens come from the
# environment (GH_TOKEN, GITHUB_TOKEN, `gh auth token`; GITLAB_TOKEN), never from this file.
[provider]
# kind = "github"
# api_url = "https://github.example.com/api/v3"
# repo = "owner/name"
remote = "origin"

# Which engine drives the tasks: "local" runs them in this process, on this machine, with no
# server; "temporal" runs them on a Temporal server, with `wf worker` on each machine
# (pip install 'wf[temporal]'; docs/temporal.md).
[engine]
kind = "local"
# address = "127.0.0.1:7233"      # Temporal: the server (`wf temporal dev` starts one here)
# namespace = "default"
# task_queue = "wf"               # prefix of the task queues and workflow ids
# api_key_env = "TEMPORAL_API_KEY"  # Temporal Cloud: the variable holding the key

# Endpoints wf's events are delivered to (docs/hooks.md): webhooks signed with the Standard
# Webhooks scheme, retried for about a day, then kept as dead letters (`wf hooks dlq`).
# [[hooks]]
# name = "team-chat"
# url = "https://example.test/hooks/wf"
# events = ["attention", "queue.landed"]  # types, globs ("task.*"), groups: attention, finished
# format = "slack"                        # "standard" (default) or "slack"
# secret_env = "WF_HOOK_SECRET"           # the variable holding the signing secret

# A desktop notification (notify-send) for what needs a person (the attention group).
[notify]
desktop = false

# Warm worktrees (docs/configuration.md, "The worktree pool"): keep `pool` worktrees checked
# out and set up ahead, so a task starts without a checkout or a setup. Setup runs again in a
# pooled worktree only when the files of setup_inputs changed; the keep folders survive from
# one task to the next, everything else a task leaves is removed.
[worktrees]
pool = 0
# setup_inputs = ["package-lock.json", "uv.lock"]
# keep = ["/node_modules", "/.venv"]
# pool_max_disk = "20GB"          # size cap of the idle pooled worktrees

# Spend caps for the whole run (per task: budget = { ... } in a [[task]]; per agent: budget
# in [agents.NAME]). Crossed while an agent runs, it is paused (not killed) and wf asks:
# `wf budget TASK --add 2.00` (or --tokens, --wall) raises the cap and resumes it.
# [budget]
# max_cost_usd = 20.0                     # or "$20"
# max_tokens = "5M"                       # or a number; k and M are understood
# max_wall = "2h"                         # the attempts' time together, pauses not counted
# on_exceed = "pause"                     # or "stop": the attempt fails as `budget`

# Rules checked when a branch enters the merge queue. Globs are gitignore-like ("**" crosses
# folders, "*" does not). A denial names the rule and is never retried.
[policy]
# Paths a task must never change.
forbidden_paths = []
# Paths whose change waits for `wf approve`, e.g. [".github/workflows/**"].
approval_paths = []
# Limits on one branch's change (unset: no limit).
# max_changed_lines = 400
# max_changed_files = 40

# An agent of your own. The command is an argv, run without a shell in the task's worktree;
# {prompt}, {task_id}, {worktree} and {attempt} are replaced in each argument.
# [agents.aider]
# command = ["aider", "--yes-always", "--message", "{prompt}"]
# env = { AIDER_AUTO_COMMITS = "true" }   # extra environment
# pass_env = ["OPENAI_API_KEY"]           # variables of yours the agent may see; it gets
#                                         # only PATH, HOME, locale, git identity and WF_*
#                                         # otherwise, so forge tokens never reach it
# max_parallel = 2                        # cap on this agent's running tasks
# timeout = "30m"                         # overrides the timeout above for this agent
# no_output_timeout = "10m"
# budget = { max_cost_usd = 5.0 }         # cap on this agent's tasks together
# adaptive = true                         # halve its parallelism on rate limits (default
#                                         # on for the agent CLIs wf knows)

# [agents.claude]                         # the CLIs wf knows (claude, codex, gemini,
#                                         # opencode, aider) need no table; one adjusts
#                                         # how wf starts them (docs/agents.md)
# adapter = "claude"                      # the default for [agents.claude]; set it to
#                                         # make another agent from the same CLI
# binary = "claude"                       # the executable, if not on PATH as "claude"
# model = "sonnet"
# args = ["--max-turns", "40"]            # extra arguments
# allowed_tools = ["Edit", "Write", "Bash(pytest *)"]
# permission_mode = "acceptEdits"
# resume = true                           # a retry continues the failed attempt's session
'''
"""What ``wf init`` writes as wf.toml; it parses to exactly the defaults."""
