"""One line per pipeline step as it finishes, the executors' full output in a log file.

``kfp.local`` prints everything to ``sys.stdout``: its own log lines and every executor's
output, including each executor's full input JSON (hundreds of lines per run). A local run
swaps ``sys.stdout`` for a :class:`ProgressStream` while the pipeline runs: every byte goes to
the run's log file (``<home>/logs/pipeline-runs/<run id>.log``), and the stream watches for
the two lines ``kfp.local`` writes around each task (``Executing task 'x'`` and ``Task 'x'
finished with status SUCCESS|FAILURE``, see ``kfp/local/task_dispatcher.py``). When a task
finishes, one line goes to the terminal: the step, its duration and its key result, read from
the ``executor_output.json`` the task left in the pipeline root. A failed task's output is
printed in full: errors are never hidden in the log file.

The key results are pure functions of a task's outputs (:func:`step_result`), so they are
tested on their own; the stream is tested by a real local run.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (SUCCESS|FAILURE)")
STEP_NAMES = {"quality-control": "quality control"}


def step_name(task: str) -> str:
    """``export-component`` -> ``export`` (the name of the step, as in the README)."""
    name = task.removesuffix("-component")
    return STEP_NAMES.get(name, name)


@dataclass(frozen=True)
class TaskOutputs:
    """What a finished task left in the pipeline root: its output parameters and artifacts."""

    parameters: Mapping[str, Any]
    artifacts: Mapping[str, Mapping[str, Any]]
    """name -> {"uri": local path, "metadata": {...}}."""

    @classmethod
    def read(cls, task_dir: Path) -> TaskOutputs:
        """The task's ``executor_output.json`` (empty when it wrote none)."""
        try:
            data = json.loads((task_dir / "executor_output.json").read_text())
        except (OSError, ValueError):
            return cls({}, {})
        artifacts = {
            name: (value.get("artifacts") or [{}])[0]
            for name, value in (data.get("artifacts") or {}).items()
        }
        return cls(data.get("parameterValues") or {}, artifacts)

    def artifact_json(self, name: str) -> Any:
        """An artifact's file parsed as JSON (None when absent or not JSON)."""
        uri = (self.artifacts.get(name) or {}).get("uri", "")
        try:
            return json.loads(Path(uri).read_text()) if uri else None
        except (OSError, ValueError):
            return None


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def step_result(step: str, out: TaskOutputs) -> str:
    """The key result of a finished step, in a few words."""
    p = out.parameters
    if step == "export":
        return f"{p.get('rows', '?')} rows exported"
    if step == "train":
        candidates = out.artifact_json("candidates") or []
        if not candidates:
            return f"trained on {p.get('training_rows', '?')} rows"
        best = max(candidates, key=lambda c: c.get("cv_score") or 0.0)
        return (
            f"{len(candidates)} families on {p.get('training_rows', '?')} rows, best CV "
            f"precision {_pct(best.get('cv_score'))} ({best.get('family')})"
        )
    if step == "evaluate":
        metrics = (out.artifacts.get("metrics") or {}).get("metadata") or {}
        family = ((out.artifacts.get("challenger_metrics") or {}).get("metadata") or {}).get(
            "family"
        )
        if family is None:
            return "candidates scored on the held-out rows"
        return (
            f"challenger {family}: held-out precision {_pct(metrics.get('challenger.precision'))}"
        )
    if step == "promote":
        decision = str(p.get("decision", "?")).replace("_", " ")
        return f"{decision}, champion v{p.get('champion_version', '?')}"
    if step == "deploy":
        return str(p.get("Output", "")).strip()
    if step == "quality control":
        text = str(p.get("Output", ""))
        found = re.search(r"(\d+) lab samples, (\d+) matched", text)
        return f"{found.group(1)} lab samples, {found.group(2)} matched" if found else text[:60]
    return ""


def step_line(step: str, seconds: float, result: str) -> str:
    """``  train            41.2 s  7 families ...`` - one line per finished step."""
    return f"  {step:<16}{seconds:6.1f} s  {result}".rstrip()


class ProgressStream(io.TextIOBase):
    """A text stream that logs everything and reports each finished task on ``terminal``."""

    def __init__(
        self,
        log: TextIO,
        terminal: TextIO,
        task_dir: Callable[[str], Path | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        Args:
            log: where every line goes (the run's log file).
            terminal: where the step lines (and a failed task's full output) go.
            task_dir: the folder a finished task left its outputs in, by task name (the
                run's folder under the pipeline root is only known once the run started).
            clock: monotonic seconds.
        """
        super().__init__()
        self.log, self.terminal, self.task_dir, self.clock = log, terminal, task_dir, clock
        self.lines: list[str] = []
        self._partial = ""
        self._started: dict[str, float] = {}
        self._task_lines: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        for line in complete:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def _line(self, raw: str) -> None:
        line = ANSI.sub("", raw)
        self._task_lines.append(line)
        started = STARTED.search(line)
        if started:
            self._started[started.group(1)] = self.clock()
            self._task_lines = [line]
            return
        finished = FINISHED.search(line)
        if not finished:
            return
        task, status = finished.groups()
        now = self.clock()
        seconds = now - self._started.get(task, now)
        step = step_name(task)
        if status == "SUCCESS":
            folder = self.task_dir(task)
            result = step_result(step, TaskOutputs.read(folder)) if folder else ""
            text = step_line(step, seconds, result)
        else:
            text = step_line(step, seconds, "FAILED - its output:")
            text += "\n" + "\n".join(self._task_lines[:-1])
        self.lines.append(text)
        self.terminal.write(text + "\n")
        self.terminal.flush()
