"""Event broadcasting: webhooks and sinks that follow the event log by sequence number.

``config`` (``[[hooks]]``, ``[notify]``), ``events`` (types, globs, groups), ``decide`` (pure:
which events an endpoint takes, when to try again, when to give up or disable), ``signing``
(Standard Webhooks), ``payload`` (the bodies), ``send`` (one HTTP POST, never raises),
``sinks`` (the ``wf.sinks`` entry points: JSON-lines file, desktop), ``state`` (the pure fold
of the ``hooks`` stream), ``runner`` (the delivery thread), ``delivery`` (running it: around
an engine's run, or ``wf hooks deliver``) and ``manage`` (what the ``wf hooks`` commands
read and write). docs/hooks.md is the user's guide.
"""
