"""One line per finished step, kfp's output in the run's log, a failed step shown in full, and
never two local runs at once. (A real run's lines are asserted by the scheduler test in
tests/pipelines/test_local_run.py, whose first run the scheduler fires.)"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.local_run import PipelineBusy, run_lock
from pipelines.progress import ProgressStream, TaskOutputs, step_result
from potability.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CYAN, GREEN, RED, RESET = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"


def _kfp_lines(task: str, status: str, body: list[str]) -> str:
    """What kfp.local's task dispatcher prints around a task (colours included)."""
    color = GREEN if status == "SUCCESS" else RED
    return (
        "\n".join(
            [
                f"20:00:00.000 - INFO - Executing task {CYAN}'{task}'{RESET}",
                "20:00:00.000 - INFO - Streamed logs:",
                "",
                *("    " + line for line in body),
                f"20:00:01.000 - INFO - Task {CYAN}'{task}'{RESET} "
                f"finished with status {color}{status}{RESET}",
            ]
        )
        + "\n"
    )


def test_a_finished_step_is_one_line_with_its_duration_and_key_result(tmp_path: Path) -> None:
    task_dir = tmp_path / "export-component"
    task_dir.mkdir()
    (task_dir / "executor_output.json").write_text(
        json.dumps({"parameterValues": {"rows": 3276, "sha256": "x"}})
    )
    log, terminal = io.StringIO(), io.StringIO()
    times = iter([10.0, 52.5])
    stream = ProgressStream(log, terminal, lambda task: tmp_path / task, clock=lambda: next(times))
    text = _kfp_lines("export-component", "SUCCESS", ["Got executor_input: {", '  "a": 1', "}"])
    stream.write(text[:40])  # kfp writes in pieces: lines are assembled first
    stream.write(text[40:])
    assert terminal.getvalue() == "  export            42.5 s  3276 rows exported\n"
    assert log.getvalue() == text  # everything, colours and all, in the log


def test_a_failed_step_shows_its_whole_output(tmp_path: Path) -> None:
    terminal = io.StringIO()
    stream = ProgressStream(io.StringIO(), terminal, lambda task: None, clock=lambda: 0.0)
    stream.write(_kfp_lines("export-component", "SUCCESS", ["fine"]))
    stream.write(
        _kfp_lines(
            "train-component",
            "FAILURE",
            ["Traceback (most recent call last):", "ValueError: no rows"],
        )
    )
    out = terminal.getvalue().splitlines()
    assert out[0].startswith("  export")
    assert out[1].startswith("  train") and "FAILED" in out[1]
    assert "    Traceback (most recent call last):" in out
    assert "    ValueError: no rows" in out
    assert not any("fine" in line for line in out)  # only the failed task's output


def test_key_results_of_every_step(tmp_path: Path) -> None:
    def outputs(parameters: dict, artifacts: dict | None = None) -> TaskOutputs:
        return TaskOutputs(parameters, artifacts or {})

    candidates = tmp_path / "candidates"
    candidates.write_text(
        json.dumps(
            [{"family": "svm", "cv_score": 0.714}, {"family": "random_forest", "cv_score": 0.69}]
        )
    )
    assert step_result(
        "train", outputs({"training_rows": 2659}, {"candidates": {"uri": str(candidates)}})
    ) == ("2 families on 2659 rows, best CV precision 71.4% (svm)")
    assert step_result(
        "evaluate",
        outputs(
            {},
            {
                "metrics": {"metadata": {"challenger.precision": 0.7011}},
                "challenger_metrics": {"metadata": {"family": "svm"}},
            },
        ),
    ) == ("challenger svm: held-out precision 70.1%")
    assert step_result(
        "promote", outputs({"decision": "champion_kept", "champion_version": "3"})
    ) == ("champion kept, champion v3")
    assert step_result("deploy", outputs({"Output": "unchanged m v3 at http://x"})) == (
        "unchanged m v3 at http://x"
    )
    assert step_result(
        "quality control",
        outputs({"Output": "r: quality control run 4 after 'x': 12 lab samples, 9 matched, ..."}),
    ) == ("12 lab samples, 9 matched")


@pytest.mark.integration
def test_a_second_run_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, database_url="postgresql://unused", mlflow_tracking_uri="http://127.0.0.1:9"
    )
    with run_lock(settings):
        with pytest.raises(PipelineBusy, match="in progress"), run_lock(settings):
            pass
        env = {
            "POTABILITY_HOME": str(tmp_path),
            "DATABASE_URL": "postgresql://unused",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "PATH": "/usr/bin:/bin",
        }
        other = subprocess.run(
            [sys.executable, "-m", "potability.cli", "pipeline", "run", "--local"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert other.returncode == 3, other.stderr
        assert "another local pipeline run is in progress" in other.stderr
    with run_lock(settings):  # released when its holder ends
        pass
