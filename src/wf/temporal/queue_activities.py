"""The merge queue's activities (``merge_queue/activities.py``) as Temporal activities.

They run on one host, the queue's: the first of them goes to the shared queue and says which
host took it (``claim``), every later one to that host's queue, so the chains built in its
object database and its integration worktrees are reused round after round. Entries whose
branch was finished on another host are fetched from the shared remote first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from temporalio import activity

from wf import gitx
from wf.merge_queue.activities import AdmitEntry, Land, QueueActivities, RunCheck
from wf.merge_queue.admission import Admission
from wf.merge_queue.candidates import Chain, Conflict, Entry
from wf.merge_queue.checks import CheckResult
from wf.merge_queue.decide import LandOutcome
from wf.merge_queue.forge_activities import (
    FindLatest,
    ForgeActivities,
    Latest,
    Merge,
    Opened,
    OpenPr,
)
from wf.merge_queue.policy import PolicyConfig
from wf.providers.base import ForgeChecks, MergeOutcome, PullRequest
from wf.temporal.activities import one_line_errors

if TYPE_CHECKING:
    from wf.repository import Repo

@dataclass(frozen=True)
class AdmitAll:
    entries: list[AdmitEntry]
    target_ref: str
    policy: dict[str, Any]
    fetch: dict[str, str] = field(default_factory=dict)  # branch -> its ref on the remote


@dataclass
class AdmitResult:
    verdict: Admission | None
    error: str | None = None
    head: str | None = None


@dataclass(frozen=True)
class BuildChain:
    base: str
    entries: list[Entry]
    depth: int


@dataclass(frozen=True)
class BuildAhead:
    chain: Chain
    entries: list[Entry]
    lead: int | None  # the first suspect: the likeliest next queue is the one without it


@dataclass(frozen=True)
class BlameLog:
    chain: Chain
    size: int
    log: str
    checks: list[list[str]]
    quiet_log: str | None


@dataclass
class Built:
    chain: Chain | None = None
    conflict: Conflict | None = None


@dataclass(frozen=True)
class ChainWithout:
    chain: Chain
    entries: list[Entry]
    index: int
    size: int


@dataclass(frozen=True)
class Contained:
    heads: list[str]
    base: str


@dataclass(frozen=True)
class ResolveTarget:
    ref: str
    fetch_remote: str | None = None  # land = "push": fetch the target from here first
    target: str = ""
    through_forge: bool = False  # land = "pr": fetch it with the forge's credentials first


# -- land = "pr": the forge's side effects (merge_queue/forge_activities.py) -------------------
@dataclass
class ForgeLatest:
    latest: Latest
    kind: str  # "github" or "gitlab": how the forge writes a PR's reference


@dataclass(frozen=True)
class Publish:
    """Push the tested candidate ``commit`` to the entry's branch, open or update its PR/MR
    (``open``), and say which file of ``commit`` configures the forge's CI."""

    commit: str
    branch: str
    open: OpenPr


@dataclass
class Published:
    opened: Opened
    ci_config: str | None


@dataclass(frozen=True)
class ReadChecks:
    pr: PullRequest
    commit: str


class QueueWorker:
    """The queue's activities on this host, against this clone."""

    def __init__(self, repo: Repo, host: str, environ: Mapping[str, str],
                 parallel_checks: int) -> None:
        self.host = host
        self.acts = QueueActivities(repo.root, repo.worktree_root, repo.logs_dir.parent / "queue",
                                    parallel_checks, environ)
        # The forge's token is this host's (its environment), never in a workflow's input.
        self.forge = ForgeActivities(repo.root, repo.config.provider, environ)

    def all(self) -> list[Callable[..., Any]]:
        return [self.claim, self.admit, self.resolve, self.contained, self.build_chain,
                self.chain_without, self.build_ahead, self.run_check, self.blame, self.land,
                self.forge_latest,
                self.forge_publish, self.forge_checks, self.forge_target_head,
                self.forge_merge, self.forge_get]

    @activity.defn(name="wf.queue.claim")
    def claim(self) -> str:
        """The queue's steps run here from now on: this host's name."""
        return self.host

    @activity.defn(name="wf.queue.admit")
    @one_line_errors
    def admit(self, inp: AdmitAll) -> list[AdmitResult]:
        root = self.acts.root
        for branch, ref in inp.fetch.items():  # finished on another host: on the remote
            if not gitx.branch_exists(root, branch):
                remote, name = ref.split("/", 1)
                gitx.fetch(root, remote, name)
                gitx.create_branch(root, branch, ref)
        policy = PolicyConfig.model_validate(inp.policy)
        out = []
        for got in self.acts.admit(inp.entries, inp.target_ref, policy):
            if isinstance(got.verdict, str):
                out.append(AdmitResult(None, got.verdict))
            else:
                out.append(AdmitResult(got.verdict, None, got.head))
        return out

    @activity.defn(name="wf.queue.resolve")
    @one_line_errors
    def resolve(self, inp: ResolveTarget) -> str:
        if inp.through_forge:
            self.forge.fetch_target(inp.target)
        elif inp.fetch_remote:
            self.acts.fetch_target(inp.fetch_remote, inp.target)
        return self.acts.resolve(inp.ref)

    @activity.defn(name="wf.queue.contained")
    @one_line_errors
    def contained(self, inp: Contained) -> list[str]:
        return self.acts.contained(inp.heads, inp.base)

    @activity.defn(name="wf.queue.build_chain")
    @one_line_errors
    def build_chain(self, inp: BuildChain) -> Built:
        built = self.acts.build_chain(inp.base, inp.entries, inp.depth)
        return Built(conflict=built) if isinstance(built, Conflict) else Built(chain=built)

    @activity.defn(name="wf.queue.chain_without")
    @one_line_errors
    def chain_without(self, inp: ChainWithout) -> Chain:
        return self.acts.chain_without(inp.chain, inp.entries, inp.index, inp.size)

    @activity.defn(name="wf.queue.build_ahead")
    async def build_ahead(self, inp: BuildAhead) -> bool:
        """While checks run: the chain later rounds may need, at a lower CPU priority (work
        done ahead must not slow the checks beside it), in the builder the next
        ``build_chain`` here reads."""
        from wf.daemon_thread import in_daemon_thread
        from wf.merge_queue.queue_loop import BACKGROUND_NICE

        await in_daemon_thread(lambda: self.acts.build_ahead(inp.chain, inp.entries, inp.lead,
                                                             ()),
                               name="wf-mq-ahead", nice=BACKGROUND_NICE,
                               finish_when_cancelled=True)
        return True

    @activity.defn(name="wf.queue.blame")
    @one_line_errors
    def blame(self, inp: BlameLog) -> list[str]:
        return self.acts.blame(inp.chain, inp.size, inp.log, inp.checks, inp.quiet_log)

    @activity.defn(name="wf.queue.run_check")
    @one_line_errors
    def run_check(self, inp: RunCheck) -> CheckResult:
        import threading

        return self.acts.run_check(inp, threading.Event(), lambda: None)

    @activity.defn(name="wf.queue.land")
    @one_line_errors
    def land(self, inp: Land) -> LandOutcome:
        return self.acts.land(inp)

    # -- land = "pr" -----------------------------------------------------------------------------
    @activity.defn(name="wf.queue.forge.latest")
    @one_line_errors
    def forge_latest(self, inp: FindLatest) -> ForgeLatest:
        return ForgeLatest(self.forge.find_latest(inp), self.forge.connect().kind)

    @activity.defn(name="wf.queue.forge.publish")
    @one_line_errors
    def forge_publish(self, inp: Publish) -> Published:
        self.forge.push_candidate(inp.commit, inp.branch)
        return Published(self.forge.open_pr(inp.open), self.forge.ci_config(inp.commit))

    @activity.defn(name="wf.queue.forge.checks")
    @one_line_errors
    def forge_checks(self, inp: ReadChecks) -> ForgeChecks:
        return self.forge.read_checks(inp.pr, inp.commit)

    @activity.defn(name="wf.queue.forge.target_head")
    @one_line_errors
    def forge_target_head(self, target: str) -> str:
        """The remote target's commit now, fetched with the forge's credentials."""
        self.forge.fetch_target(target)
        return self.forge.target_head(target)

    @activity.defn(name="wf.queue.forge.merge")
    @one_line_errors
    def forge_merge(self, inp: Merge) -> MergeOutcome:
        return self.forge.merge(inp)

    @activity.defn(name="wf.queue.forge.get")
    @one_line_errors
    def forge_get(self, number: int) -> PullRequest:
        return self.forge.get(number)
