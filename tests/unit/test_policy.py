"""``[policy]``: the path globs, and the order and wording of evaluate()'s verdicts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wf.gitx import ChangedFile
from wf.merge_queue.policy import (
    ALLOW,
    ChangeSummary,
    PolicyConfig,
    PolicyVerdict,
    evaluate,
    match_path,
)


@pytest.mark.parametrize(("pattern", "path"), [
    # ** at the end, the start, the middle, alone
    (".github/workflows/**", ".github/workflows/ci.yml"),
    (".github/workflows/**", ".github/workflows/sub/deep.yml"),
    ("**/*.lock", "poetry.lock"),
    ("**/*.lock", "a/b/Cargo.lock"),
    ("src/**/gen.py", "src/gen.py"),
    ("src/**/gen.py", "src/a/b/gen.py"),
    ("**", "anything/at/all"),
    # no slash: a name at any depth
    ("*.pem", "key.pem"),
    ("*.pem", "deploy/keys/key.pem"),
    ("Makefile", "sub/Makefile"),
    # a pattern that matches a directory matches what it holds
    ("secrets", "secrets/key"),
    ("vendor", "a/vendor/lib.py"),
    ("secrets/*", "secrets/key"),
    ("secrets/*", "secrets/nested/key"),
    # trailing slash: directories only
    ("build/", "build/out.o"),
    ("build/", "src/build/out.o"),
    ("docs/api/", "docs/api/index.md"),
    # a leading slash only anchors
    ("/setup.py", "setup.py"),
    # ? and sets
    ("file?.txt", "file1.txt"),
    ("v[0-9].txt", "v7.txt"),
    ("v[!0-9].txt", "vx.txt"),
    ("\\*.txt", "*.txt"),
    ("a\\?", "a?"),
    ("[]]x", "]x"),
    # names with spaces, brackets and newlines are paths like any other
    ("dir with space/*", "dir with space/f"),
    ("*", "new\nline.txt"),
])
def test_glob_matches(pattern: str, path: str) -> None:
    assert match_path(pattern, path)


@pytest.mark.parametrize(("pattern", "path"), [
    # * and ? stay within one segment
    ("src/*.py", "src/pkg/mod.py"),
    ("docs/*", "README.md"),
    ("a*b", "a/b"),
    ("a?b", "a/b"),
    ("v[!0-9].txt", "v/.txt"),
    # a slash anchors the pattern at the top
    ("secrets/*", "app/secrets/key"),
    ("/setup.py", "pkg/setup.py"),
    ("src/**/gen.py", "lib/src/gen.py"),
    # dots are literal
    ("*.lock", "poetry_lock"),
    (".github/workflows/**", "xgithub/workflows/ci.yml"),
    # dir/** is what the directory holds, not the directory (a file of that name)
    (".github/workflows/**", ".github/workflows"),
    # trailing slash: not a file of that name
    ("build/", "build"),
    ("build/", "src/build"),
    # whole names only
    ("*.pem", "key.pem.bak"),
    ("Makefile", "Makefile.in"),
    ("secrets", "secrets2/key"),
    ("file?.txt", "file.txt"),
    ("file?.txt", "file12.txt"),
    ("\\*.txt", "a.txt"),
    # case matters, as in git
    ("*.PEM", "key.pem"),
])
def test_glob_does_not_match(pattern: str, path: str) -> None:
    assert not match_path(pattern, path)


@pytest.mark.parametrize("pattern", ["", "/", "//", "a//b", "!secrets/**", "[z-a]"])
def test_bad_globs_are_config_errors(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        match_path(pattern, "a")
    with pytest.raises(ValidationError):
        PolicyConfig(forbidden_paths=(pattern,))


def test_config_forbids_unknown_fields_and_limits_below_one() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"forbidden_path": ["x"]})
    with pytest.raises(ValidationError):
        PolicyConfig(max_changed_lines=0)
    with pytest.raises(ValidationError):
        PolicyConfig(max_changed_files=0)


def test_every_config_field_is_documented() -> None:
    for name, field in PolicyConfig.model_fields.items():
        assert field.description, name


def _change(*files: str, added: int = 0, deleted: int = 0,
            renamed_from: tuple[str, ...] = ()) -> ChangeSummary:
    return ChangeSummary(files=files, lines_added=added, lines_deleted=deleted,
                         renamed_from=renamed_from)


def test_no_policy_allows_anything() -> None:
    assert evaluate(PolicyConfig(), _change("a", added=10**6)) == ALLOW
    assert PolicyVerdict("allow", None, None) == ALLOW


@pytest.mark.parametrize("rule", [{"forbidden_paths": ("a",)}, {"approval_paths": ("a",)},
                                  {"max_changed_lines": 1}, {"max_changed_files": 1}])
def test_any_one_rule_makes_a_policy_that_needs_the_diff(rule: dict) -> None:
    assert not PolicyConfig().has_rules  # admission skips the diff
    assert PolicyConfig(**rule).has_rules


def test_forbidden_path_is_denied_with_the_path_and_pattern() -> None:
    policy = PolicyConfig(forbidden_paths=("secrets/**", ".github/workflows/**"))
    verdict = evaluate(policy, _change("src/a.py", ".github/workflows/ci.yml"))
    assert verdict == PolicyVerdict(
        "deny", "forbidden_paths",
        "changes .github/workflows/ci.yml (matches .github/workflows/**)")


def test_several_forbidden_paths_are_counted() -> None:
    policy = PolicyConfig(forbidden_paths=("*.pem",))
    verdict = evaluate(policy, _change("a.pem", "src/ok.py", "b/c.pem", "d.pem"))
    assert verdict.detail == "changes a.pem (matches *.pem) and 2 more"


def test_renaming_away_from_a_forbidden_path_is_a_change_to_it() -> None:
    policy = PolicyConfig(forbidden_paths=("secrets/**",))
    change = _change("public/key", renamed_from=("secrets/key",))
    assert evaluate(policy, change).detail == "changes secrets/key (matches secrets/**)"


def test_file_limit_counts_a_rename_once() -> None:
    policy = PolicyConfig(max_changed_files=2)
    assert evaluate(policy, _change("a", "b", renamed_from=("old-b",))) == ALLOW
    assert evaluate(policy, _change("a", "b", "c")) == PolicyVerdict(
        "deny", "max_changed_files", "3 changed files, more than 2")


def test_line_limit_counts_added_and_deleted_and_allows_the_maximum() -> None:
    policy = PolicyConfig(max_changed_lines=400)
    assert evaluate(policy, _change("a", added=300, deleted=100)) == ALLOW
    assert evaluate(policy, _change("a", added=300, deleted=112)) == PolicyVerdict(
        "deny", "max_changed_lines", "412 changed lines, more than 400")


def test_file_limit_allows_the_maximum() -> None:
    assert evaluate(PolicyConfig(max_changed_files=1), _change("a")) == ALLOW


def test_approval_path_needs_approval() -> None:
    policy = PolicyConfig(approval_paths=(".github/workflows/**",))
    assert evaluate(policy, _change("src/a.py")) == ALLOW
    assert evaluate(policy, _change(".github/workflows/ci.yml")) == PolicyVerdict(
        "needs_approval", "approval_paths",
        "changes .github/workflows/ci.yml (matches .github/workflows/**)")


@pytest.mark.parametrize(("policy", "rule"), [
    # every rule fires on the change below; the first deny rule in this order wins
    (PolicyConfig(forbidden_paths=("ci/**",), max_changed_files=1, max_changed_lines=1,
                  approval_paths=("ci/**",)), "forbidden_paths"),
    (PolicyConfig(max_changed_files=1, max_changed_lines=1, approval_paths=("ci/**",)),
     "max_changed_files"),
    (PolicyConfig(max_changed_lines=1, approval_paths=("ci/**",)), "max_changed_lines"),
    (PolicyConfig(approval_paths=("ci/**",)), "approval_paths"),
])
def test_deny_rules_come_before_approval(policy: PolicyConfig, rule: str) -> None:
    verdict = evaluate(policy, _change("ci/deploy.yml", "src/a.py", added=5))
    assert verdict.rule == rule
    assert verdict.decision == ("needs_approval" if rule == "approval_paths" else "deny")


def test_summary_from_numstat_records() -> None:
    summary = ChangeSummary.from_diff([
        ChangedFile("src/a.py", 3, 1),
        ChangedFile("logo.png", None, None),  # binary: a file, no lines
        ChangedFile("new/name.py", 0, 2, old_path="old/name.py"),
    ])
    assert summary == ChangeSummary(files=("src/a.py", "logo.png", "new/name.py"),
                                    lines_added=3, lines_deleted=3,
                                    renamed_from=("old/name.py",))
    assert summary.paths == ("src/a.py", "logo.png", "new/name.py", "old/name.py")
    assert summary.changed_lines == 6
