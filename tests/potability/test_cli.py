"""One command line: ``potability`` holds the local stack, the data, the model, the pipeline
and the Google Cloud deployment (click); every command and group has a line of help, and each
``--help`` works. Parsing and help only: nothing here starts a process or opens a socket."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from potability import cli, db


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group below ``group``, as the words that name it."""
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _paths(command, (*prefix, name))
    return found


PATHS = _paths(cli.commands)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli.commands
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_the_tree_holds_every_command() -> None:
    assert {
        ("up",),
        ("functions",),
        ("samples", "tokens", "revoke"),
        ("archive", "query"),
        ("model", "rollback"),
        ("pipeline", "run"),
        ("pipeline", "publish"),
        ("pipeline", "submit"),
        ("gcp", "deploy"),
        ("gcp", "destroy"),
        ("gcp", "model"),
    } <= set(PATHS)
    assert set(cli.gcp.commands) == {"bootstrap", "deploy", "smoke", "model", "destroy"}


@pytest.mark.parametrize("path", [(), *PATHS], ids=lambda p: " ".join(p) or "potability")
def test_each_help_works_and_every_listed_command_has_its_whole_line(
    path: tuple[str, ...],
) -> None:
    result = CliRunner().invoke(cli.commands, [*path, "--help"], prog_name="potability")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(('potability', *path))} ")
    command = _command(path)
    assert command.help and command.get_short_help_str(limit=10**6), "a command without help"
    if isinstance(command, click.Group):
        text = " ".join(result.output.split())  # write_dl wraps long lines
        for sub in command.commands.values():
            line = sub.get_short_help_str(limit=10**6)
            assert line and f"{sub.name} {line}" in text, f"{sub.name}: {line!r} cut short"


def test_the_top_level_help_says_each_command_once_in_a_section() -> None:
    listed = [name for names in cli.SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(cli.commands.commands)  # each in exactly one section
    out = CliRunner().invoke(cli.commands, ["--help"], prog_name="potability").output
    for title in cli.SECTIONS:
        assert out.count(f"\n{title}:\n") == 1, title
    for name in listed:
        assert out.count(f"\n  {name} ") == 1, name


def test_a_commands_return_value_is_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pipeline", "run"]) == 2  # without --local
    assert "use `submit` for Vertex AI" in capsys.readouterr().err
    assert CliRunner().invoke(cli.commands, ["pipeline", "run"]).exit_code == 2


def test_usage_errors_exit_2_and_say_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gcp", "deplo"]) == 2
    assert "No such command 'deplo'" in capsys.readouterr().err
    assert cli.main(["model", "approve", "--reason", "ok"]) == 2
    assert "Missing argument 'VERSION'" in capsys.readouterr().err
    assert cli.main(["archive", "read", "--day", "yesterday"]) == 2
    assert "'yesterday' is not a day (YYYY-MM-DD)" in capsys.readouterr().err
    assert cli.main(["pipeline", "run", "--local", "--param", "grids"]) == 2
    assert "needs key=value, got 'grids'" in capsys.readouterr().err


def test_pipeline_params_are_json_when_they_parse() -> None:
    ctx = cli.pipeline_submit.make_context(
        "submit", ["--param", "cv_folds=3", "--param", "grids=quick", "--param", "x=a=b"]
    )
    assert ctx.params["params"] == {"cv_folds": 3, "grids": "quick", "x": "a=b"}


def test_archive_query_takes_sql_that_starts_with_a_comment() -> None:
    sql = "-- monthly share\nSELECT 1 WHERE 2 = 2"
    ctx = cli.archive_query.make_context("query", [sql, "--out", "x.csv"])
    assert (ctx.params["sql"], ctx.params["out"]) == (sql, Path("x.csv"))


def test_gcp_model_hands_everything_after_its_own_options_to_the_job() -> None:
    ctx = cli.gcp_model.make_context(
        "model", ["--dry-run", "rollback", "4", "--reason", "fell, week 48", "--dry-run"]
    )
    assert ctx.params == {
        "dry_run": True,
        "model_args": ("rollback", "4", "--reason", "fell, week 48", "--dry-run"),
    }


def test_an_unreachable_database_is_a_clear_error_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_: object, **__: object) -> db.Connection:
        raise db.DatabaseUnavailable("cannot reach 127.0.0.1:5432")

    monkeypatch.setenv("POTABILITY_HOME", str(tmp_path))
    monkeypatch.setattr(db, "connect", refuse)
    assert cli.main(["seed"]) == 2
    assert capsys.readouterr().err == "error: cannot reach 127.0.0.1:5432\n"


def test_the_gcp_group_runs_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gcp", "bootstrap", "--dry-run", "--project=water-x"]) == 0
    out = capsys.readouterr().out
    assert (
        "gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com "
        "iam.googleapis.com --project=water-x" in out
    )


def test_the_pipeline_group_compiles_the_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    assert cli.main(["pipeline", "compile", "--output", str(out)]) == 0
    assert "water-potability-training" in out.read_text()
