"""The local daily schedule: cron arithmetic, a bad schedule refused, an empty one starting
nothing. The real service firing a real pipeline run (its progress lines, outcome and log, a
run by hand refused meanwhile) is tested in test_local_run.py, where that run is also the
first of the two runs the pipeline's tests read (one KFP run fewer, issue 32)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipelines import local_scheduler
from pipelines.local_scheduler import Schedule
from potability.config import Settings
from potability.local import services


def test_next_firing_is_read_in_the_schedules_time_zone() -> None:
    daily = Schedule("0 3 * * *", "Europe/Paris")
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = daily.next_after(after)
    assert first == datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert first.utcoffset() == timedelta(hours=2)  # the night clocks go forward
    assert daily.next_after(first) == datetime(2026, 3, 30, 3, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert Schedule("0 3 * * *", "Etc/UTC").next_after(after) == datetime(
        2026, 3, 29, 3, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("every day", "Etc/UTC", "is not a cron expression"),
        ("0 3 * * *", "Mars/Olympus", "is not an IANA time zone"),
    ],
)
def test_a_bad_schedule_is_refused_with_its_setting_named(
    expression: str, zone: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(expression, zone)


def test_an_empty_schedule_starts_nothing(tmp_path: Path) -> None:
    line = local_scheduler.start(Settings(home=tmp_path, pipeline_schedule=""))
    assert line.startswith("off")
    assert services.running_pid(tmp_path, local_scheduler.SERVICE) is None
