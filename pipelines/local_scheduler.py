"""The daily schedule in local mode: a background service that runs the training pipeline.

On Google Cloud, Cloud Scheduler starts the pipeline (``terraform/scheduler.tf``: the
``schedule`` cron expression in ``schedule_time_zone``, default ``0 3 * * *`` in ``Etc/UTC``).
Locally, ``potability up`` starts this service (``scheduler``, pid file and log like every
other service, stopped by ``potability down``) with the same kind of expression:

    PIPELINE_SCHEDULE            unix-cron, default "0 3 * * *"; empty: no local schedule.
                                 A sixth field gives seconds (croniter), for tests.
    PIPELINE_SCHEDULE_TIME_ZONE  IANA zone the expression is read in, default "Etc/UTC".
    PIPELINE_SCHEDULE_PARAMS     extra pipeline parameters, "k=v,k=v" (default none: the
                                 pipeline's defaults, which are Terraform's variable defaults).

At each time it fires, it runs ``potability pipeline run --local`` as a child process (the very
command a user types, so the run's outcome lands in ``water.pipeline_runs`` and its full output
in ``<home>/logs/pipeline-runs/<run id>.log``; the step lines and summary go to this service's
log). Never two runs at once: the pipeline's own lock (:func:`pipelines.local_run.run_lock`)
refuses a second run, by hand or scheduled, and a firing that finds a run in progress is
logged as skipped. A firing missed while the machine was off is not caught up (Cloud
Scheduler does not either, without a retry config): the next one comes at its time.

Between runs it also does what Terraform's monitoring does on GCP for a pipeline that stops
running: every :data:`STALE_CHECK_SECONDS` it runs the stale-run check
(:func:`potability.governance.run_record.check_stale`: no success for ``ALERT_STALE_HOURS`` raises
``pipeline_stale`` - its log line lands in this service's log, and the webhook is called when
``ALERT_WEBHOOK_URL`` is set - and the next success resolves it). A database that cannot be
reached skips that check (logged) and never stops the schedule.

Before each firing it runs the inference log's daily maintenance (:func:`maintain`,
:func:`potability.inference.log.run_maintenance`: partitions ahead, request keys pruned, days
past ``INFERENCE_RETENTION_DAYS`` archived to ``<home>/inference-archive`` and dropped) - what
the ``<name_prefix>-maintenance`` job does on GCP. A failure is logged and never stops the
schedule or the run; the next firing repeats it (each step is idempotent).

The service publishes what it will do next in ``<home>/run/scheduler.json`` for ``potability
status``. Cron semantics are croniter's (https://github.com/pallets-eco/croniter, the README's
"About DST" section: times are computed in the given zone, across DST changes).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from potability import alerts, db
from potability.config import Settings, load_settings
from potability.governance import run_record
from potability.inference import log as inference_log
from potability.local import services

SERVICE = "scheduler"
STATE_FILE = "scheduler.json"
BUSY_EXIT = 3
"""Exit code of ``potability pipeline run --local`` when another run holds the lock."""
ROOT = Path(__file__).resolve().parent.parent
MAX_SLEEP = 30.0
"""Longest single sleep: the wall clock is re-read this often (a laptop may have slept)."""
STALE_CHECK_SECONDS = 60.0
"""How often, between runs, the stale-run check runs (the alert is about hours, so a minute's
delay is nothing; the query is two index scans)."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    time_zone: str

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression):
            raise ValueError(
                f"PIPELINE_SCHEDULE {self.expression!r} is not a cron expression "
                "(5 fields, e.g. '0 3 * * *'; a 6th field gives seconds)"
            )
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"PIPELINE_SCHEDULE_TIME_ZONE {self.time_zone!r} is not an IANA "
                "time zone (e.g. 'Etc/UTC', 'Europe/Paris')"
            ) from None

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after ``moment`` (aware), in the schedule's zone."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        return croniter(self.expression, local).get_next(datetime)


def schedule_of(settings: Settings) -> Schedule | None:
    """The configured schedule, or None when ``PIPELINE_SCHEDULE`` is empty."""
    if not settings.pipeline_schedule:
        return None
    return Schedule(settings.pipeline_schedule, settings.pipeline_schedule_time_zone)


def check_params(pairs: tuple[str, ...]) -> None:
    """Refuse, at ``up``, scheduled parameters the pipeline does not declare (the run at 03:00
    would fail on them), naming them and the parameters there are."""
    from pipelines.training_pipeline import default_parameters

    known = default_parameters()
    bad = [p for p in pairs if "=" not in p or p.partition("=")[0].strip() not in known]
    if bad:
        raise ValueError(
            f"PIPELINE_SCHEDULE_PARAMS {bad}: each must be name=value with a "
            f"parameter of the pipeline ({', '.join(known)})"
        )


def state_path(home: Path) -> Path:
    return home / "run" / STATE_FILE


def read_state(home: Path) -> dict[str, Any]:
    try:
        return json.loads(state_path(home).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(home: Path, **values: Any) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**read_state(home), **values}, indent=1))
    tmp.replace(path)


def run_command(settings: Settings) -> list[str]:
    """The command a firing runs: the user's own, with the scheduled parameters."""
    return local_run_command(settings.pipeline_schedule_params)


def local_run_command(params: Iterable[str] = ()) -> list[str]:
    """``potability pipeline run --local`` in this interpreter, ``--param`` for each
    ``key=value`` of ``params``: what a firing runs, and what the pipeline benchmark and the
    fault tests start."""
    argv = [sys.executable, "-m", "potability.cli", "pipeline", "run", "--local"]
    for pair in params:
        argv += ["--param", pair]
    return argv


def maintain(settings: Settings, when: datetime) -> inference_log.MaintenanceReport | None:
    """The inference log's maintenance once; never raises (logged, repeated next firing)."""
    try:
        report = inference_log.run_maintenance(settings, now=when)
    except Exception as exc:  # noqa: BLE001 - the schedule must outlive a failed maintenance
        print(
            f"{when.isoformat(timespec='seconds')} inference-log maintenance failed: "
            f"{type(exc).__name__}: {exc}",
            flush=True,
        )
        _write_state(
            settings.home,
            last_maintenance=when.isoformat(),
            last_maintenance_outcome=f"failed: {type(exc).__name__}",
        )
        return None
    for line in report.lines():
        print(f"{when.isoformat(timespec='seconds')} inference-log maintenance: {line}", flush=True)
    _write_state(
        settings.home, last_maintenance=when.isoformat(), last_maintenance_outcome="succeeded"
    )
    return report


def fire(settings: Settings, now: Callable[[], datetime]) -> int:
    """Run the maintenance, then the pipeline once, in the foreground of this service; return
    the pipeline's exit code."""
    maintain(settings, now())
    started = now()
    print(f"{started.isoformat(timespec='seconds')} scheduled run starting", flush=True)
    global _child
    _child = subprocess.Popen(run_command(settings), cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        code = _child.wait()
    finally:
        _child = None
    outcome = {0: "succeeded", BUSY_EXIT: "skipped: another run was in progress"}.get(
        code, f"failed (exit {code})"
    )
    print(f"{now().isoformat(timespec='seconds')} scheduled run {outcome}", flush=True)
    _write_state(
        settings.home, last_fired=started.isoformat(), last_exit=code, last_outcome=outcome
    )
    return code


def check_stale(settings: Settings, when: datetime) -> list[alerts.Alert]:
    """The stale-run check once: raise (log line, webhook) or resolve ``pipeline_stale``.

    Returns the alerts raised now. Never raises: with the database down the check is skipped
    and logged, and the next one tries again."""
    try:
        with closing(db.connect(settings)) as conn:
            raised = run_record.check_stale(conn, settings, when)
    except Exception as exc:  # noqa: BLE001 - the schedule must outlive a database outage
        print(
            f"{when.isoformat(timespec='seconds')} stale-run check skipped: "
            f"{type(exc).__name__}: {exc}",
            flush=True,
        )
        return []
    alerts.publish(settings, raised, when)
    return raised


def wait_until(
    settings: Settings,
    due: datetime,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    checked: datetime | None = None,
) -> datetime | None:
    """Sleep until ``due``, running :func:`check_stale` every :data:`STALE_CHECK_SECONDS`
    meanwhile (first at once, unless ``checked`` - when it last ran - is more recent).

    Returns when the check last ran, for the next wait."""
    while (left := (due - now()).total_seconds()) > 0:
        moment = now()
        if checked is None or (moment - checked).total_seconds() >= STALE_CHECK_SECONDS:
            check_stale(settings, moment)
            checked = moment
            left = (due - now()).total_seconds()
        if left > 0:
            sleep(min(left, MAX_SLEEP, STALE_CHECK_SECONDS))
    return checked


def serve(
    settings: Settings,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    firings: int | None = None,
) -> None:
    """Fire the pipeline at each time of the schedule, forever (or ``firings`` times); check
    for a stale pipeline while waiting."""
    schedule = schedule_of(settings)
    if schedule is None:
        print("PIPELINE_SCHEDULE is empty: no local schedule", flush=True)
        return
    fired = 0
    checked: datetime | None = None
    while firings is None or fired < firings:
        due = schedule.next_after(now())
        _write_state(
            settings.home,
            schedule=schedule.expression,
            time_zone=schedule.time_zone,
            next_run=due.isoformat(),
        )
        print(
            f"next run {due.isoformat()} ({schedule.expression}, {schedule.time_zone})", flush=True
        )
        checked = wait_until(settings, due, now, sleep, checked)
        fire(settings, now)
        fired += 1


def start(settings: Settings) -> str:
    """Start (or keep, or restart on a changed schedule, or stop when empty) the service.

    Returns a line for ``potability up``.
    """
    home = settings.home
    schedule = schedule_of(settings)  # an invalid expression fails `up` here, loudly
    running = services.running_pid(home, SERVICE)
    state = read_state(home)
    if schedule is None:
        if running:
            services.stop(home, SERVICE)
        state_path(home).unlink(missing_ok=True)
        return "off (PIPELINE_SCHEDULE is empty)"
    check_params(settings.pipeline_schedule_params)
    wanted = {
        "schedule": schedule.expression,
        "time_zone": schedule.time_zone,
        "params": list(settings.pipeline_schedule_params),
    }
    if running and {k: state.get(k) for k in wanted} != wanted:
        services.stop(home, SERVICE)
        running = None
    if not running:
        state_path(home).unlink(missing_ok=True)
        _write_state(home, **wanted)
        env = {
            "PIPELINE_SCHEDULE": schedule.expression,
            "PIPELINE_SCHEDULE_TIME_ZONE": schedule.time_zone,
            "PIPELINE_SCHEDULE_PARAMS": ",".join(settings.pipeline_schedule_params),
            "POTABILITY_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        services.start(
            home, SERVICE, [sys.executable, "-m", "pipelines.local_scheduler"], env=env, cwd=ROOT
        )
        _wait_for_state(home)
    return f"{schedule.expression} ({schedule.time_zone}), next run {next_run(home) or '?'}"


def _wait_for_state(home: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not read_state(home).get("next_run"):
        if not services.running_pid(home, SERVICE):
            raise RuntimeError(
                f"the scheduler exited at start; see {services.log_file(home, SERVICE)}"
            )
        time.sleep(0.1)


def next_run(home: Path) -> str:
    """The next firing the running service announced (empty when none runs)."""
    if not services.running_pid(home, SERVICE):
        return ""
    return str(read_state(home).get("next_run", ""))


_child: subprocess.Popen[bytes] | None = None
"""The run in progress, if any."""


def _on_sigterm(*_: Any) -> None:
    """Stop; a run in progress got the same signal (one process group) and records itself as
    failed: wait for it rather than kill it mid-write."""
    if _child is not None:
        try:
            _child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _child.kill()
    sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    serve(load_settings())


if __name__ == "__main__":
    main()
