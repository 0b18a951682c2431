"""wf.configload, wf.taskload and wf.configerrors: repo config, env overrides, tasks files, task
resolution, error messages."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wf.config import AgentConfig, Config, TaskConfig
from wf.init_template import INIT_TEMPLATE
from wf.configload import ENV_VARS, find_repo_config_file, load_config
from wf.errors import ConfigError
from wf.model import FailureKind
from wf.spec import RetryPolicy
from wf.taskload import build_specs, load_tasks_file, prompt_slug, prompt_tasks

BUILTINS = {"shell": AgentConfig(command=("sh", "-c", "{prompt}")),
            "demo": AgentConfig(command=("python", "demo.py", "{task_id}"), timeout=60)}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_error(call, *args, **kwargs) -> ConfigError:
    """The ConfigError ``call`` raises, checked to be one line."""
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    return info.value


def specs(tasks: list[TaskConfig], config: Config | None = None, **kwargs):
    kwargs.setdefault("builtin_agents", BUILTINS)
    kwargs.setdefault("default_base", "main")
    return build_specs(tasks, config or Config(agent="shell"), **kwargs)


# --- repo config --------------------------------------------------------------------------

def test_defaults_without_any_file(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={}) == Config()
    assert find_repo_config_file(tmp_path) is None


def test_wf_toml_is_read(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", 'max_parallel = 8\ntimeout = "2h"\n[retry]\njitter = 0.5\n')
    config = load_config(tmp_path, env={})
    assert (config.max_parallel, config.timeout, config.retry.jitter) == (8, 7200.0, 0.5)
    assert config.retry.maximum_attempts == 3
    assert find_repo_config_file(tmp_path) == tmp_path / "wf.toml"


def test_pyproject_tool_wf_is_read_when_there_is_no_wf_toml(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.wf]\nmax_parallel = 2\n')
    assert load_config(tmp_path, env={}).max_parallel == 2
    assert find_repo_config_file(tmp_path) == tmp_path / "pyproject.toml"


def test_wf_toml_wins_over_pyproject_whole(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.wf]\nmax_parallel = 2\nagent = "demo"\n')
    write(tmp_path / "wf.toml", "max_parallel = 6\n")
    config = load_config(tmp_path, env={})
    assert (config.max_parallel, config.agent) == (6, None)  # not merged
    assert find_repo_config_file(tmp_path) == tmp_path / "wf.toml"


def test_pyproject_without_tool_wf_means_defaults(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 99\n')
    assert load_config(tmp_path, env={}) == Config()
    assert find_repo_config_file(tmp_path) is None


def test_pyproject_errors_name_the_tool_wf_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.wf.retry]\njitter = 3\n")
    assert str(config_error(load_config, tmp_path, env={})).startswith(
        "pyproject.toml: [tool.wf.retry].jitter: input should be less than or equal to 1")
    write(tmp_path / "pyproject.toml", "[tool]\nwf = 3\n")
    assert "[tool.wf] must be a table" in str(config_error(load_config, tmp_path, env={}))
    write(tmp_path / "pyproject.toml", "[tool.wf\n")
    assert str(config_error(find_repo_config_file, tmp_path)).startswith(
        "pyproject.toml: invalid TOML at line 1")


def test_init_template_parses_to_exactly_the_defaults(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", INIT_TEMPLATE)
    assert load_config(tmp_path, env={}) == Config()


def test_init_template_mentions_every_field() -> None:
    names = [*Config.model_fields, *RetryPolicy.model_fields, *AgentConfig.model_fields]
    missing = [name for name in names if name not in INIT_TEMPLATE]
    assert missing == []


def test_init_template_agent_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    block = INIT_TEMPLATE[INIT_TEMPLATE.index("# [agents."):]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    write(tmp_path / "wf.toml", uncommented)
    agent = load_config(tmp_path, env={}).agents["aider"]
    assert "{prompt}" in agent.command and agent.timeout == 1800.0


# --- env overrides ------------------------------------------------------------------------

def test_env_overrides_every_variable(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", "max_parallel = 8\n[retry]\nmaximum_attempts = 7\n")
    env = {
        "WF_MAX_PARALLEL": "3", "WF_BASE": "develop", "WF_AGENT": "demo",
        "WF_WORKTREE_ROOT": "/tmp/wt", "WF_TIMEOUT": "90s", "WF_NO_OUTPUT_TIMEOUT": "120",
        "WF_LOG_MAX_BYTES": "65536", "WF_RETRY_MAXIMUM_ATTEMPTS": "0",
        "WF_RETRY_INITIAL_INTERVAL": "1m", "WF_RETRY_BACKOFF_COEFFICIENT": "1.5",
        "WF_RETRY_MAXIMUM_INTERVAL": "600", "WF_RETRY_JITTER": "0",
        "WF_ENGINE": "temporal", "WF_TEMPORAL_ADDRESS": "tc.example:7233",
        "WF_TEMPORAL_NAMESPACE": "ns", "WF_TEMPORAL_TASK_QUEUE": "wf-x", "WF_TEMPORAL_HOST": "h1",
        "WF_POOL": "4",
    }
    assert set(env) == set(ENV_VARS)
    config = load_config(tmp_path, env=env)
    assert (config.max_parallel, config.base, config.agent, config.worktree_root) == (
        3, "develop", "demo", "/tmp/wt")
    assert config.worktrees.pool == 4
    assert (config.timeout, config.no_output_timeout, config.log_max_bytes) == (90.0, 120.0, 65536)
    assert config.retry == RetryPolicy(maximum_attempts=0, initial_interval=60,
                                       backoff_coefficient=1.5, maximum_interval=600, jitter=0)


def test_env_zero_timeout_means_no_limit_and_empty_values_are_ignored(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={"WF_TIMEOUT": "0", "WF_MAX_PARALLEL": "",
                                        "WF_AGENT": "  "})
    assert (config.timeout, config.max_parallel, config.agent) == (None, 4, None)


def test_other_wf_variables_are_not_config(tmp_path: Path) -> None:
    env = {"WF_TASK_ID": "x", "WF_PORT": "nope", "WF_RETRY_NON_RETRYABLE": "?", "WF_SETUP": "1"}
    assert load_config(tmp_path, env=env) == Config()


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WF_MAX_PARALLEL", "9")
    assert load_config(tmp_path).max_parallel == 9


@pytest.mark.parametrize(("var", "value", "reason"), [
    ("WF_MAX_PARALLEL", "0", "greater than or equal to 1"),
    ("WF_MAX_PARALLEL", "many", "valid integer"),
    ("WF_MAX_PARALLEL", "1e999", "finite number"),
    ("WF_TIMEOUT", "soon", "not a duration"),
    ("WF_TIMEOUT", "-5", "negative"),
    ("WF_NO_OUTPUT_TIMEOUT", "nan", "finite number"),
    ("WF_LOG_MAX_BYTES", "9" * 30, "out of range"),
    ("WF_RETRY_JITTER", "2", "less than or equal to 1"),
    ("WF_RETRY_BACKOFF_COEFFICIENT", "0.5", "greater than or equal to 1"),
    ("WF_RETRY_MAXIMUM_ATTEMPTS", "3\nx", "valid integer"),
])
def test_bad_env_value_names_the_variable(tmp_path: Path, var: str, value: str,
                                          reason: str) -> None:
    message = str(config_error(load_config, tmp_path, env={var: value}))
    assert message.startswith(f"environment variable {var}=")
    assert reason in message


# --- tasks files --------------------------------------------------------------------------

def test_tasks_file_overrides_merge_into_the_config(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", """
max_parallel = 8
agent = "mine"
[retry]
maximum_attempts = 5
jitter = 0.5
[agents.mine]
command = ["mine", "{prompt}"]
timeout = 60
[agents.other]
command = ["other"]
""")
    base = load_config(tmp_path, env={})
    tasks_path = write(tmp_path / "tasks.toml", """
max_parallel = 2
[retry]
jitter = 0.1
[agents.mine]
command = ["mine2"]
[agents.new]
command = ["new"]
[[task]]
prompt = "one"
[[task]]
id = "two"
prompt = "two"
depends_on = ["one"]
""")
    config, tasks = load_tasks_file(tasks_path, base)
    assert config.max_parallel == 2 and config.agent == "mine"
    assert (config.retry.maximum_attempts, config.retry.jitter) == (5, 0.1)
    assert config.agents["mine"] == AgentConfig(command=("mine2",))  # replaced whole
    assert set(config.agents) == {"mine", "other", "new"}
    assert [t.prompt for t in tasks] == ["one", "two"] and tasks[1].depends_on == ("one",)
    assert base.max_parallel == 8  # the repo config is untouched


def test_tasks_file_without_overrides_keeps_the_config(tmp_path: Path) -> None:
    base = Config(max_parallel=3)
    config, tasks = load_tasks_file(write(tmp_path / "t.toml", '[[task]]\nprompt = "x"\n'), base)
    assert config is base and len(tasks) == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("", "no [[task]] tables in {f}"),
    ("max_parallel = 2\n", "no [[task]] tables in {f}"),
    ("task = []\n", "no [[task]] tables in {f}"),
    ('[[tasks]]\nprompt = "x"\n', "no [[task]] tables in {f}"),
    ('task = "x"\n', "{f}: 'task' must be an array of tables written [[task]], got a string"),
    ("task = [1]\n", "{f}: [[task]] #1 must be a table, got an integer"),
    ('[task]\nprompt = "x"\n', "{f}: 'task' must be an array of tables"),
    ('[[task]]\nprompt = "a"\n[[task]]\nid = "x"\nprompt = "b"\ntimeout = "soon"\n',
     "{f}: [[task]] #2 (id 'x').timeout: not a duration: 'soon'"),
    ('[[task]]\nprompt = "a"\nbogus = 1\n', "{f}: unknown key 'bogus' in [[task]] #1"),
    ('[[task]]\nid = "x"\n', "{f}: [[task]] #1 (id 'x').prompt: required key is missing"),
    ('[[task]]\nprompt = "  "\n', "{f}: [[task]] #1.prompt: the prompt is empty"),
    ('[[task]]\nid = "../x"\nprompt = "a"\n', "{f}: [[task]] #1 (id '../x').id: invalid task id"),
    ('[[task]]\nprompt = "a"\ndepends_on = ["--upload-pack=x"]\n',
     "{f}: [[task]] #1.depends_on: invalid task id '--upload-pack=x'"),
    ('[[task]]\nprompt = "a"\nretry = { nope = 1 }\n',
     "{f}: unknown key 'nope' in [[task]] #1.retry"),
    ('[[task]]\nid = "y"\nprompt = "a"\n[task.retry]\nmaximum_attempts = -1\n',
     "{f}: [[task]] #1 (id 'y').retry.maximum_attempts: input should be greater than"),
    ('max_parallel = 0\n[[task]]\nprompt = "a"\n', "{f}: max_parallel: input should be"),
    ('[retry]\nnope = 1\n[[task]]\nprompt = "a"\n', "{f}: unknown key 'nope' in [retry]"),
    ('[agents.x]\nenv = { A = 1 }\n[[task]]\nprompt = "a"\n',
     "{f}: [agents.x.env].A: input should be a valid string"),
    # A misspelt key is named first, with the key it is close to, not the missing one
    ('[[task]]\nid = "a"\npromt = "x"\n',
     "{f}: unknown key 'promt' in [[task]] #1 (id 'a') (did you mean 'prompt'?)"),
    ('[agents.x]\ncomand = ["true"]\n[[task]]\nprompt = "a"\n',
     "{f}: unknown key 'comand' in [agents.x] (did you mean 'command'?)"),
    ('[merge]\nchek = [["true"]]\n[[task]]\nprompt = "a"\n',
     "{f}: unknown key 'chek' in [merge] (did you mean 'check'?)"),
    ('[retry]\nmaximum_atempts = 3\n[[task]]\nprompt = "a"\n',
     "{f}: unknown key 'maximum_atempts' in [retry] (did you mean 'maximum_attempts'?)"),
    ('[[task]]\nprompt = "a"\nzzz = 1\n', "{f}: unknown key 'zzz' in [[task]] #1"),
    # A list given as a plain value says the shape TOML wants
    ('[[task]]\nid = "a"\nprompt = "x"\ndepends_on = "other"\n',
     "{f}: [[task]] #1 (id 'a').depends_on: must be a list, e.g. depends_on = [\"other\"]"),
])
def test_tasks_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "tasks.toml", text)
    message = str(config_error(load_tasks_file, path, Config()))
    assert message.startswith(expected.format(f=path)), message


def test_tasks_typo_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "tasks.toml", '[[tasks]]\nprompt = "x"\n')
    assert "[[task]]" in (config_error(load_tasks_file, path, Config()).hint or "")


# --- error formatting ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("max_parallel = \n", "wf.toml: invalid TOML at line 1, column 16: invalid value"),
    ("a = 1\na = 2\n", "wf.toml: invalid TOML at line 2, column"),
    ("max_parallel = 0", "wf.toml: max_parallel: input should be greater than or equal to 1 "
                         "(got 0)"),
    ("nope = 1", "wf.toml: unknown top-level key 'nope'"),
    ("[retry]\nnope = 1", "wf.toml: unknown key 'nope' in [retry]"),
    ('[agents.foo]\ncommand = ["x"]\nnope = 1', "wf.toml: unknown key 'nope' in [agents.foo]"),
    ('[agents.foo]\ncommand = "x"',
     'wf.toml: [agents.foo].command: must be a list, e.g. command = ["x"]'),
    ("[agents.foo]\ncommand = []", "wf.toml: [agents.foo].command: tuple should have at least"),
    ('[agents."Bad Name"]\ncommand = ["x"]', 'wf.toml: [agents."Bad Name"]: invalid agent name'),
    ("[retry]\nmaximum_attempts = 2.5", "wf.toml: [retry].maximum_attempts: input should be"),
    ('[retry]\nnon_retryable = ["oops"]', "wf.toml: [retry].non_retryable[0]: input should be"),
    ("max_parallel = 99999999999999999999999", "wf.toml: max_parallel: integer out of range"),
    ("timeout = 99999999999999999999999", "wf.toml: timeout: integer out of range"),
    ("timeout = nan", "wf.toml: timeout: nan is not allowed"),
    ("[retry]\ninitial_interval = -inf", "wf.toml: [retry].initial_interval: -inf is not"),
    ('base = "a\\u0000b"', "wf.toml: base: NUL characters are not allowed"),
    ("timeout = 1979-05-27", "wf.toml: timeout: not a duration"),
    ("port_range = [1, 2]", "wf.toml: port_range must be two ports"),
    ("port_range = [1, [2]]", "wf.toml: port_range[1]: input should be a valid integer"),
    ('base = "' + "x" * 300 + '"\nmax_parallel = "' + "y" * 300 + '"',
     "wf.toml: max_parallel: input should be a valid integer, unable to parse string as an "
     "integer (got 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...)"),
    ("max_parallel = 0\ntimeout = -1\n[retry]\njitter = 9",
     "wf.toml: max_parallel: input should be greater than or equal to 1 (got 0) (and 2 more)"),
    ('[[task]]\nprompt = "x"', "wf.toml: unknown top-level key 'task'"),
    ("agents = 3", "wf.toml: agents: input should be a valid dictionary (got 3)"),
    ("[agents]\nfoo = 3", "wf.toml: [agents].foo: input should be a valid dictionary"),
    ('"a\\nb" = 1', 'wf.toml: unknown top-level key'),
])
def test_wf_toml_errors(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path / "wf.toml", text)
    message = str(config_error(load_config, tmp_path, env={}))
    assert message.startswith(expected), message


@pytest.mark.parametrize("text", [
    "a = " + "[" * 5000 + "]" * 5000,
    ".".join(["a"] * 5000) + " = 1",
    "[" + ".".join(["retry"] * 3000) + "]",
    '[[task]]\nprompt = "x"\nretry.' + ".".join(["a"] * 5000) + " = 1",
])
def test_deep_nesting(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "wf.toml", text)
    assert "nested" in str(config_error(load_config, tmp_path, env={}))
    assert "nested" in str(config_error(load_tasks_file, path, Config()))


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").write_bytes(b"base = '\xff'\n")
    assert str(config_error(load_config, tmp_path, env={})) == \
        "wf.toml: not valid UTF-8 (byte 0xff at offset 8)"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").write_bytes("\ufeffmax_parallel = 5\n".encode())
    assert load_config(tmp_path, env={}).max_parallel == 5


def test_wf_toml_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").mkdir()
    assert str(config_error(load_config, tmp_path, env={})) == \
        "wf.toml: is a directory, not a file"


def test_wf_toml_that_is_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "wf.toml").symlink_to(tmp_path / "gone.toml")
    assert str(config_error(load_config, tmp_path, env={})) == "wf.toml: no such file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.toml", "max_parallel = 2\n")
    path.chmod(0)
    try:
        assert str(config_error(load_config, tmp_path, env={})) == \
            "wf.toml: cannot read: permission denied"
    finally:
        path.chmod(0o644)


def test_missing_tasks_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert str(config_error(load_tasks_file, path, Config())) == f"{path}: no such file"


def test_errors_are_chained_to_their_cause(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", "max_parallel = \n")
    err = config_error(load_config, tmp_path, env={})
    assert isinstance(err.__cause__, tomllib.TOMLDecodeError)


@pytest.mark.parametrize(("text", "expected"), [
    ('[agents.a]\ncommand = ["x"]\nenv = { "A=B" = "1" }', "[agents.a].env: invalid variable"),
    ('[agents.a]\ncommand = ["x"]\nenv = { "" = "1" }', "[agents.a].env: invalid variable"),
    ('[agents.a]\ncommand = ["x"]\nenv = { "A\\u0000" = "1" }', "[agents.a].env: NUL characters"),
])
def test_agent_env_names_must_be_usable(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path / "wf.toml", text)
    assert str(config_error(load_config, tmp_path, env={})).startswith("wf.toml: " + expected)


# --- ids ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("prompt", "slug"), [
    ("Fix the login bug!", "fix-the-login-bug"),
    ("  --Add   CSV export--  ", "add-csv-export"),
    ("Café naïve résumé", "cafe-naive-resume"),
    ("!!!", "task"),
    ("日本語", "task"),
    ("a" * 39 + " b", "a" * 39),  # cut at 40, then the trailing '-' goes
    ("x" * 100, "x" * 40),
])
def test_prompt_slug(prompt: str, slug: str) -> None:
    assert prompt_slug(prompt) == slug


def test_derived_ids_are_deduplicated_around_explicit_ones() -> None:
    tasks = [TaskConfig(prompt="Fix bug"), TaskConfig(id="fix-bug-2", prompt="other"),
             TaskConfig(prompt="fix BUG"), TaskConfig(prompt="fix bug."), TaskConfig(prompt="?")]
    assert [s.id for s in specs(tasks)] == ["fix-bug", "fix-bug-2", "fix-bug-3", "fix-bug-4",
                                            "task"]


def test_duplicate_explicit_ids() -> None:
    tasks = [TaskConfig(id="a", prompt="x"), TaskConfig(id="b", prompt="y"),
             TaskConfig(id="a", prompt="z")]
    assert str(config_error(specs, tasks)) == "duplicate task id 'a' (tasks #1 and #3)"


def test_prompt_tasks_numbering_continues() -> None:
    first = prompt_tasks("Fix the bug", 3, None, set())
    assert [t.id for t in first] == ["fix-the-bug-1", "fix-the-bug-2", "fix-the-bug-3"]
    assert all(t.prompt == "Fix the bug" and t.agent is None for t in first)
    existing = {t.id for t in first if t.id} | {"fix-the-bug-x", "fix-the-bugs-9", "other-7"}
    second = prompt_tasks("Fix the bug", 3, "demo", existing)
    assert [t.id for t in second] == ["fix-the-bug-4", "fix-the-bug-5", "fix-the-bug-6"]
    assert {t.agent for t in second} == {"demo"}
    assert [t.id for t in prompt_tasks("Fix the bug", 1, None, {"fix-the-bug-10"})] == \
        ["fix-the-bug-11"]


def test_prompt_tasks_rejects_nonsense() -> None:
    assert "at least 1" in str(config_error(prompt_tasks, "x", 0, None, set()))
    assert "empty" in str(config_error(prompt_tasks, " ", 2, None, set()))
    huge = {"x-" + "9" * 61}  # the next number needs 64 characters
    assert "cannot number" in str(config_error(prompt_tasks, "x", 1, None, huge))


# --- the DAG ------------------------------------------------------------------------------

def dag(*edges: tuple[str, tuple[str, ...]]) -> list[TaskConfig]:
    return [TaskConfig(id=tid, prompt=tid, depends_on=deps) for tid, deps in edges]


def test_topological_order_is_stable() -> None:
    tasks = dag(("c", ("b",)), ("a", ()), ("b", ("a",)), ("d", ()), ("e", ("a", "d", "a")))
    result = specs(tasks)
    assert [s.id for s in result] == ["a", "b", "c", "d", "e"]
    assert result[-1].depends_on == ("a", "d")  # duplicates dropped, order kept
    assert [s.id for s in specs(dag(("z", ()), ("y", ()), ("x", ())))] == ["z", "y", "x"]


def test_unknown_dependency() -> None:
    err = config_error(specs, dag(("a", ()), ("b", ("zz",))))
    assert str(err) == "task 'b' depends on unknown task 'zz'"
    assert err.hint == "known task ids: a, b"


def test_self_dependency() -> None:
    assert str(config_error(specs, dag(("a", ("a",))))) == "task 'a' depends on itself"


def test_cycles_are_printed_as_paths() -> None:
    assert str(config_error(specs, dag(("a", ("b",)), ("b", ("a",))))) == \
        "dependency cycle: a -> b -> a"
    tasks = dag(("x", ()), ("p", ("x", "q")), ("q", ("r",)), ("r", ("p",)), ("s", ("p",)))
    assert str(config_error(specs, tasks)) == "dependency cycle: p -> q -> r -> p"


def test_dependency_on_a_derived_id() -> None:
    tasks = [TaskConfig(prompt="Write docs"), TaskConfig(id="b", prompt="b",
                                                         depends_on=("write-docs",))]
    assert [s.id for s in specs(tasks)] == ["write-docs", "b"]


# --- resolving a task ---------------------------------------------------------------------

def test_agent_is_looked_up_in_config_then_builtins() -> None:
    config = Config(agents={"shell": AgentConfig(command=("bash", "-c", "{prompt}"),
                                                 env={"A": "1"})})
    shell, demo = specs([TaskConfig(id="a", prompt="p", agent="shell"),
                         TaskConfig(id="b", prompt="q", agent="demo")], config)
    assert (shell.command, shell.env) == (("bash", "-c", "{prompt}"), {"A": "1"})
    assert demo.command == ("python", "demo.py", "{task_id}")  # placeholders kept


def test_unknown_and_missing_agent() -> None:
    config = Config(agents={"mine": AgentConfig(command=("m",))})
    assert str(config_error(specs, [TaskConfig(id="a", prompt="p", agent="nope")], config)) == \
        "task 'a': unknown agent 'nope' (known: demo, mine, shell)"
    message = str(config_error(specs, [TaskConfig(id="a", prompt="p")], config))
    assert "names no agent" in message and "--agent" in message


def test_task_fields_fall_back_to_agent_then_config() -> None:
    config = Config(agent="demo", base="develop", timeout=100, no_output_timeout=50,
                    setup=("make", "deps"), retry=RetryPolicy(maximum_attempts=5))
    plain, custom, unlimited = specs([
        TaskConfig(id="a", prompt="p"),
        TaskConfig(id="b", prompt="p", agent="shell", base="feature", timeout=7,
                   no_output_timeout="1m", setup=("true",),
                   retry={"maximum_attempts": 1, "initial_interval": "2s"}),
        TaskConfig(id="c", prompt="p", timeout=0, setup=()),
    ], config)
    # demo sets its own timeout (60) but not no_output_timeout
    assert (plain.agent, plain.base, plain.timeout, plain.no_output_timeout) == (
        "demo", "develop", 60.0, 50.0)
    assert plain.setup == ("make", "deps") and plain.retry == config.retry
    assert (custom.agent, custom.base, custom.timeout, custom.no_output_timeout) == (
        "shell", "feature", 7.0, 60.0)
    assert custom.setup == ("true",)
    assert (custom.retry.maximum_attempts, custom.retry.initial_interval) == (1, 2.0)
    assert custom.retry.jitter == config.retry.jitter
    assert (unlimited.timeout, unlimited.setup) == (None, None)  # 0 / [] switch them off


def test_agent_timeout_zero_means_no_limit() -> None:
    config = Config(agent="slow", timeout=100,
                    agents={"slow": AgentConfig(command=("s",), timeout=0)})
    assert specs([TaskConfig(id="a", prompt="p")], config)[0].timeout is None


def test_default_base_is_the_last_fallback() -> None:
    assert specs([TaskConfig(id="a", prompt="p")], default_base="trunk")[0].base == "trunk"


def test_task_retry_errors() -> None:
    bad_key = TaskConfig(id="a", prompt="p", retry={"maximum_attempt": 2})
    assert str(config_error(specs, [bad_key])) == (
        "task 'a': unknown key 'maximum_attempt' in retry (did you mean 'maximum_attempts'?)")
    bad_value = TaskConfig(id="a", prompt="p", retry={"non_retryable": ["nope"]})
    assert str(config_error(specs, [bad_value])).startswith(
        "task 'a': retry.non_retryable[0]: input should be")
    ok = TaskConfig(id="a", prompt="p", retry={"non_retryable": ["timeout"]})
    assert specs([ok])[0].retry.non_retryable == (FailureKind.TIMEOUT,)


# --- nothing but ConfigError, whatever the input ------------------------------------------

BAD_IDS = ["../x", "--upload-pack=x", "", "A", "a" * 64, "a" * 63, "ok", "x.lock", "a..b",
           "a/b", " a", "a\n", "ok-2"]
KEYS = sorted({*Config.model_fields, *RetryPolicy.model_fields, *AgentConfig.model_fields,
               *TaskConfig.model_fields, "task", "tasks", "tool", "wf"})
SCALARS = (st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.booleans()
           | st.text(max_size=12)
           | st.sampled_from(BAD_IDS + ["5m", "1h30m", "-1s", "0", "{prompt}", "config_error"])
           | st.dates()
           | st.datetimes(timezones=st.sampled_from([None, dt.UTC]))
           | st.times())
ANY_KEY = st.sampled_from(KEYS) | st.text(max_size=6)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(ANY_KEY, inner, max_size=4), max_leaves=12)
GOOD_IDS = st.sampled_from(["a", "b", "c", "fix-bug", "fix-bug-2", "task"])
TASK = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.sampled_from(["Fix bug", "fix bug", "!!", "a"]) | st.text(max_size=30),
        "id": GOOD_IDS | st.sampled_from(BAD_IDS) | st.text(max_size=8),
        "agent": st.sampled_from(["shell", "demo", "mine", "", "Nope"]) | VALUES,
        "depends_on": st.lists(GOOD_IDS, max_size=3) | st.lists(st.sampled_from(BAD_IDS),
                                                                max_size=3) | VALUES,
        "timeout": st.sampled_from([0, 5, 2.5, "5m", "1h30m", "250ms"]) | VALUES,
        "no_output_timeout": st.sampled_from([0, "90s"]) | VALUES,
        "base": st.sampled_from(["main", "v1.0"]) | VALUES,
        "retry": st.dictionaries(st.sampled_from([*RetryPolicy.model_fields, "nope"]), SCALARS,
                                 max_size=3) | VALUES,
        "setup": st.lists(st.text(max_size=5), max_size=2) | VALUES,
        "bogus": VALUES,
    })


# Mostly valid tasks, so that id derivation, agents, retry merging and the DAG get exercised.
PLAUSIBLE_TASK = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["Fix bug", "fix bug", "!!", "a", "Fix bug 2"])},
    optional={
        "id": GOOD_IDS,
        "agent": st.sampled_from(["shell", "demo", "nope"]),
        "depends_on": st.lists(GOOD_IDS, max_size=3),
        "timeout": st.sampled_from([0, 5, "5m"]),
        "retry": st.dictionaries(st.sampled_from(["maximum_attempts", "jitter", "nope"]),
                                 st.integers(-1, 3), max_size=2),
        "setup": st.lists(st.sampled_from(["make", ""]), max_size=2),
    })

DOC = st.builds(
    lambda top, tasks: {**top, **({"task": tasks} if tasks is not None else {})},
    st.dictionaries(ANY_KEY, VALUES, max_size=5),
    st.none() | st.lists(TASK, max_size=4) | VALUES,
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}"
                           for k, v in value.items()) + "}"


def toml_document(doc: dict) -> str:
    return "".join(f"{toml_value(str(key))} = {toml_value(value)}\n" for key, value in doc.items())


def test_toml_writer_round_trips() -> None:
    doc = {"a": [1, 2.5, "x\x7f\n"], "b": {"c d": True}, "e": dt.date(2020, 1, 2)}
    assert tomllib.loads(toml_document(doc)) == doc


CONTENT = (DOC.map(toml_document)
           | st.text(max_size=200)
           | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")))


def load_everything(repo: Path, env: dict[str, str]) -> None:
    """Load wf.toml, then the tasks file, then build specs: each succeeds or is a one-line
    ConfigError."""
    try:
        config = load_config(repo, env=env)
        run_config, tasks = load_tasks_file(repo / "tasks.toml", config)
        specs(tasks, run_config)
    except ConfigError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
        assert exc.hint is None or len(exc.hint.splitlines()) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repo_text=CONTENT, tasks_text=CONTENT, use_pyproject=st.booleans(),
       env=st.dictionaries(st.sampled_from([*ENV_VARS, "WF_TASK_ID"]),
                           st.text(max_size=8).filter(lambda s: "\x00" not in s), max_size=3))
def test_any_input_loads_or_raises_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                repo_text: str, tasks_text: str,
                                                use_pyproject: bool,
                                                env: dict[str, str]) -> None:
    repo = tmp_path_factory.mktemp("repo")
    if use_pyproject:
        write(repo / "pyproject.toml", "[tool.wf]\n" + repo_text)
    else:
        write(repo / "wf.toml", repo_text)
    write(repo / "tasks.toml", tasks_text)
    load_everything(repo, env)


@settings(max_examples=150, deadline=None)
@given(tasks=st.lists(PLAUSIBLE_TASK | TASK, min_size=1, max_size=6))
def test_structured_tasks_files_load_or_raise_config_error(
        tmp_path_factory: pytest.TempPathFactory, tasks: list[dict]) -> None:
    repo = tmp_path_factory.mktemp("repo")
    write(repo / "tasks.toml", toml_document({"agent": "shell", "task": tasks}))
    load_everything(repo, {})



# --- budgets ------------------------------------------------------------------------------

def test_budgets_in_wf_toml_agents_and_tasks_reach_the_specs(tmp_path: Path) -> None:
    write(tmp_path / "wf.toml", '[budget]\nmax_cost_usd = "$20"\non_exceed = "stop"\n'
          '[agents.a]\ncommand = ["true"]\nbudget = { max_tokens = "1.5M" }\nadaptive = false\n')
    config = load_config(tmp_path, env={})
    assert config.budget is not None and (config.budget.max_cost_usd,
                                          config.budget.on_exceed) == (20.0, "stop")
    assert config.agents["a"].adaptive is False
    path = write(tmp_path / "tasks.toml", '[[task]]\nid = "t"\nprompt = "x"\nagent = "a"\n'
                 'budget = { max_wall = "10m", max_tokens = 5000 }\n')
    run_config, tasks = load_tasks_file(path, config)
    (spec,) = specs(tasks, run_config)
    assert spec.budget is not None and (spec.budget.max_wall, spec.budget.max_tokens) == \
        (600.0, 5000)
    assert spec.agent_budget is not None and spec.agent_budget.max_tokens == 1_500_000


@pytest.mark.parametrize(("text", "expected"), [
    ("[budget]\nmax_cost_usd = -1", "wf.toml: budget: max_cost_usd: a budget cannot be negative"),
    ('[budget]\nmax_tokens = "5 gigatokens"', "wf.toml: budget: max_tokens: not an amount"),
    ('[budget]\nmax_wall = "3 weeks"', "wf.toml: budget: max_wall: not a duration"),
    ('[budget]\non_exceed = "boom"', 'wf.toml: budget: on_exceed must be "pause" or "stop"'),
    ("[budget]\nmax_dollars = 3", "wf.toml: budget: unknown budget key 'max_dollars'"),
    ('[agents.a]\ncommand = ["x"]\nbudget = { max_cost_usd = "2 EUR" }',
     "wf.toml: [agents.a].budget: max_cost_usd: not an amount"),
])
def test_a_bad_budget_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path / "wf.toml", text)
    message = str(config_error(load_config, tmp_path, env={}))
    assert message.startswith(expected), message


def test_a_bad_task_budget_names_the_task(tmp_path: Path) -> None:
    path = write(tmp_path / "tasks.toml",
                 '[[task]]\nid = "a"\nprompt = "x"\nbudget = { max_cost_usd = -2 }\n')
    message = str(config_error(load_tasks_file, path, Config()))
    assert message.startswith(f"{path}: [[task]] #1 (id 'a').budget: max_cost_usd: a budget "
                              "cannot be negative"), message
