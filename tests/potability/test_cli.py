"""One command line: ``potability`` holds the local stack, the data, the model, the pipeline
and the Google Cloud deployment; every command has a line of help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from potability import cli


def _commands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each sub-command of ``parser`` with its help line (``""`` when it has none)."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = {choice.dest: choice.help or "" for choice in action._choices_actions}
    assert set(lines) == set(action.choices), "a command without a help line"
    return lines


def test_every_command_and_group_has_a_help_line() -> None:
    parser = cli.build_parser()
    top = _commands(parser)
    assert {"up", "model", "qc", "maintenance", "pipeline", "gcp"} <= set(top)
    assert all(top.values()), top
    sub = _commands(parser._subparsers._group_actions[0].choices["gcp"])  # type: ignore[union-attr]
    assert set(sub) == {"bootstrap", "deploy", "smoke", "model", "destroy"}
    assert all(sub.values()), sub


def test_the_top_level_help_says_each_command_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("maintenance", "pipeline", "gcp"):
        assert out.count(f"\n    {name}") == 1, name


def test_the_gcp_group_hands_its_arguments_to_the_module(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["gcp", "bootstrap", "--dry-run", "--project=water-x"]) == 0
    out = capsys.readouterr().out
    assert (
        "gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com "
        "iam.googleapis.com --project=water-x" in out
    )


def test_an_unknown_gcp_action_is_refused_with_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["gcp", "deplo"])
    assert caught.value.code == 2
    assert "invalid choice: 'deplo'" in capsys.readouterr().err


def test_the_pipeline_group_compiles_the_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    assert cli.main(["pipeline", "compile", "--output", str(out)]) == 0
    assert "water-potability-training" in out.read_text()


def test_a_delegated_command_shows_its_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["gcp", "deploy", "--help"])
    assert capsys.readouterr().out.startswith("usage: potability gcp deploy")
