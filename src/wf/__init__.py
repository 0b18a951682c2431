"""wf: run many coding agents in parallel on one repository, safely."""

__version__ = "0.1.0"
