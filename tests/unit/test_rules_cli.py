"""`segmenter rules check FILE` and `segmenter rules show` (SPEC sections 5 and 9)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from segmenter.rules import default_rules, default_rules_text, parse_rules
from streams.cli import cli
from streams.cli.rules_cmd import rules


def test_check_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(default_rules_text())
    result = CliRunner().invoke(cli, ["rules", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"OK {path}: 3 dimensions (lifecycle, value, engagement), windows value_days=365 engagement_days=30, "
        f"version {default_rules().version}\n"
    )
    assert result.stderr == ""


def test_check_a_single_dimension_file(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "version: 1\nwindows: {engagement_days: 7}\ndimensions:\n  vip:\n    - {tier: yes_, when: true}\n"
    )
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 0
    assert result.stdout.startswith(
        f"OK {path}: 1 dimension (vip), windows value_days=365 engagement_days=7, "
    )


def test_check_a_bad_file_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\ndimensions:\n  lifecycle:\n    - tier: churned\n      when: recencydays >= 180\n"
        "    - {tier: active, when: 'true'}\n"
    )
    result = CliRunner().invoke(cli, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}:5: unknown feature 'recencydays' in condition of tier 'churned' of dimension "
        "'lifecycle' (did you mean 'recency_days'?)\n"
    )
    assert "Traceback" not in result.output


def test_check_bad_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ndimensions:\n  a: [1, 2\n  b: 3\n")
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:4: invalid YAML: ")
    assert result.stderr.count("\n") == 1


def test_check_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {path}: cannot read rules file: No such file or directory\n"


def test_check_from_stdin() -> None:
    result = CliRunner().invoke(rules, ["check", "-"], input="version: 3\n")
    assert result.exit_code == 1
    assert result.stderr == "error: <stdin>:1: unsupported rules version: found the number 3, expected 1\n"


def test_show_prints_the_default_rules() -> None:
    result = CliRunner().invoke(cli, ["rules", "show"])
    assert result.exit_code == 0
    assert result.stdout == default_rules_text()
    assert parse_rules(result.stdout).version == default_rules().version


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["rules", "--help"])
    assert result.exit_code == 0
    assert "check" in result.stdout and "show" in result.stdout
