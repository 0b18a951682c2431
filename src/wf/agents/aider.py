"""aider: ``aider --message=PROMPT --yes-always --no-auto-commits`` (wf commits the change).

aider has no structured output, so the reader picks what it can out of its text: edits
("Applied edit to PATH"), token and cost reports ("Tokens: 2.1k sent, 310 received. Cost:
$0.01 message, $0.03 session."), and the errors litellm passes through (rate limits,
authentication). Every other line is kept as plain text.
"""

from __future__ import annotations

import re

from wf.agents import adapter as a
from wf.agents.codex import retry_in
from wf.config import AgentConfig
from wf.model import FailureKind, says_rate_limited

TOKENS_RE = re.compile(r"Tokens: ([\d.]+)(k?) sent(?:, ([\d.]+)(k?) cache \w+)*, ([\d.]+)(k?) "
                       r"received\.(?: Cost: \$([\d.]+) message)?")
EDIT_RE = re.compile(r"^Applied edit to (.+)$")
RATE_RE = re.compile(r"RateLimitError|rate limited|Overloaded|ServiceUnavailable|"
                     r"InternalServerError|APIConnectionError", re.I)
AUTH_RE = re.compile(r"AuthenticationError|API key|api_key|Unauthorized|401", re.I)
RETRYING_RE = re.compile(r"Retrying in ([\d.]+) seconds")


class AiderAdapter(a.Adapter):
    name = "aider"
    binary = "aider"
    usage_reported = "live"  # a Tokens: line after each reply
    pass_env = ("AIDER_*", "OPENAI_*", "ANTHROPIC_*", "GEMINI_API_KEY", "DEEPSEEK_API_KEY",
                "OPENROUTER_API_KEY", "GROQ_API_KEY", "OLLAMA_API_BASE", "LITELLM_*")
    credentials = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
                   "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "AIDER_MODEL")
    credential_files = (".aider.conf.yml",)
    auth_hint = "set the model provider's API key (e.g. OPENAI_API_KEY or ANTHROPIC_API_KEY)"

    def command(self, agent: AgentConfig) -> tuple[str, ...]:
        return (self.exe(agent), "--message={prompt}", "--yes-always", "--no-auto-commits",
                "--no-pretty", "--no-stream", "--no-check-update", "--no-show-release-notes",
                "--analytics-disable", *a.options([("--model", agent.model)]), *agent.args)

    def reader(self) -> AiderReader:
        return AiderReader()


class AiderReader(a.OutputReader):
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.retry_after: float | None = None

    def feed(self, line: str) -> list[a.Entry]:
        line = line.rstrip()
        if not line.strip():
            return []
        tokens = TOKENS_RE.search(line)
        if tokens:
            sent = float(tokens.group(1)) * (1000 if tokens.group(2) else 1)
            received = float(tokens.group(5)) * (1000 if tokens.group(6) else 1)
            cost = float(tokens.group(7)) if tokens.group(7) else None
            self.errors = []  # a reply came through: earlier errors were retried away
            return [a.usage(int(sent), int(received), cost)]
        edit = EDIT_RE.match(line.strip())
        if edit:
            return [a.tool("edit", edit.group(1))]
        retrying = RETRYING_RE.search(line)
        if retrying:
            self.retry_after = float(retrying.group(1))
        if RATE_RE.search(line) or AUTH_RE.search(line) and "Error" in line:
            self.errors.append(line.strip())
            return [a.Entry("error", {"text": line.strip()})]
        return [a.text(line)]

    def verdict(self, exit_code: int | None) -> a.Verdict | None:
        if not self.errors:
            return None
        message = a.clip(self.errors[-1], 200)
        if AUTH_RE.search(message) and not RATE_RE.search(message):
            return a.Verdict(FailureKind.CONFIG_ERROR, f"aider could not authenticate "
                             f"({message}): {AiderAdapter.auth_hint}")
        if RATE_RE.search(message):
            return a.Verdict(FailureKind.TRANSIENT, message,
                             retry_after=retry_in(message) or self.retry_after,
                             rate_limited=says_rate_limited(message))
        return None


adapter = AiderAdapter()
