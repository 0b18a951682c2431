"""The pool of warm worktrees: prepared ahead, handed to tasks, given back after ``wf clean``.

* :mod:`wf.pool.rules` (pure): the ``pool`` stream's reducer and every decision: which pooled
  worktree fits a task, whether setup must run again, what to refill, what the disk cap
  evicts, what a crashed step becomes.
* :mod:`wf.pool.slots` (activities): the git and file work on one pooled worktree, idempotent.
* :mod:`wf.pool.keeper` (the interpreter): ``WorktreePool`` reads the pool's rows, asks the
  rules, records intent → effect → done in the host's event log and runs the activities.

This ``__init__`` imports nothing, so the store's reducer can import the rules cheaply.
"""
