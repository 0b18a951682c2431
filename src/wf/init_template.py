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
'''
"""What ``wf init`` writes as wf.toml; it parses to exactly the defaults."""
