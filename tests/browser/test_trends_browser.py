"""The status page's 90-day trends (issue 33) in a real headless Chromium, from a stack with five
weeks of history - and the README's screenshot of the page, written from that stack so it
cannot go stale.

The history goes in through the write paths that accept past timestamps: the model changes
through :func:`potability.governance.model_changes.record` (v4 promoted, v5 promoted, v4 back
by an operator), lab samples through add_sample itself (the real local function, posted by
the lab CSV import's poster; ``sampled_at`` in the past), a quality-control run per day
(:func:`potability.quality.job.run` at that day's time: its roll-up catch-up is the hourly
maintenance's, so every hour of the history is rolled up by the jobs, never by hand), and
today's champion through the pipeline's run record. Readings of past days are rows of the
inference log itself - predict stamps ``inferred_at`` with the database's clock, so the past
cannot go through it - and today's readings go through the real predict function.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from potability import db
from potability.config import Settings
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES
from potability.governance import model_changes as mc
from potability.governance import run_record
from potability.inference.rollup import floor_hour, rollable_through
from potability.local import function_servers
from potability.quality import job as qc_job
from potability.samples_import import Poster, Row, import_rows

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SCREENSHOT = ROOT / "docs" / "status-page.png"  # README.md: ![Status page](...)
SERVICE = "trends-browser-test"
MODEL = "water-potability"
RUN_ID = "trends-browser-test-run"
SENSORS = ["north-reservoir", "east-main", "south-well", "west-tower"]
DAYS = 35
EVERY = timedelta(minutes=30)
"""A reading per sensor every 30 min: 192 a day, so each day has the 100 measured values of
every feature (Sulfate is missing in about a quarter of the seed rows) that a day needs to
count in the drift change test (docs/quality-control.md)."""
SULFATE_SHIFT_DAYS = 2
"""Sulfate reads 50 mg/L high over the last 2 days: a change against the four weeks before,
which the trend must show as drift, and since when. (A shift that lasts becomes part of the
change test's baseline within days: then it is "unlike the training data", watch, no longer a
change - docs/quality-control.md.)"""
SAMPLE_EVERY = 12
"""A lab sample per sensor every 12th reading (6 hours)."""
CHANGES = ((34, "promoted", "4", None), (20, "promoted", "5", "4"), (9, "rolled_back", "4", "5"))
"""(days ago, action, version served after it, version before)."""

pytestmark = pytest.mark.e2e


def _served_version(when: datetime, now: datetime) -> str:
    version = "4"
    for days_ago, _, served, _ in CHANGES:
        if when >= now - timedelta(days=days_ago):
            version = served
    return version


@pytest.fixture
def history(
    clean_db: db.Connection, settings: Settings, local_functions: tuple[Path, dict[str, str]]
) -> Iterator[dict[str, Any]]:
    """Five weeks of a plausible service, and what the page must show, computed here."""
    home, env = local_functions
    now = datetime.now(UTC)
    cur = clean_db.cursor()
    cur.execute("DELETE FROM water.model_changes")  # the page shows every model's changes
    cur.execute("DELETE FROM water.alerts")
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (RUN_ID,))
    clean_db.commit()

    # today's champion, through the pipeline's run record (its clock: now)
    run_record.start_run(settings, RUN_ID, "0" * 64, 3276)
    run_record.record_decision(
        settings,
        RUN_ID,
        {
            "decision": "champion_kept",
            "model_name": MODEL,
            "champion_version": "4",
            "champion_family": "random_forest",
            "champion_precision": 0.74,
            "champion_recall": 0.38,
            "champion_precision_low": 0.66,
            "champion_precision_high": 0.81,
            "training_rows": 3276,
        },
        {},
    )
    run_record.finish_run(settings, RUN_ID)
    for days_ago, action, version, previous in CHANGES:
        mc.record(
            clean_db,
            model_name=MODEL,
            action=action,
            actor=mc.AUTOMATIC if action == "promoted" else "ops@utility.example",
            when=now - timedelta(days=days_ago),
            version=version,
            previous_version=previous,
            reason="live precision of v5 fell on lab samples" if action == "rolled_back" else None,
            evidence={"family": "random_forest", "held_out_precision": 0.72},
        )
    clean_db.commit()

    # readings of the past five weeks: real measurements (the seed rows), every 30 min per
    # sensor; v4 is right 4 times in 5, v5 3 times in 5 (why it was rolled back)
    cols = ", ".join(FEATURE_COLUMNS)
    steps = int(timedelta(days=DAYS) / EVERY)
    cur.execute(
        f"SELECT {cols}, potability FROM water.water_potability WHERE source = 'seed' ORDER BY id",
    )
    seed_rows = list(cur.fetchall())
    random.Random(7).shuffle(seed_rows)
    luck = random.Random(11)
    sulfate = FEATURE_COLUMNS.index("sulfate")
    rows, samples = [], []
    per_day: Counter[str] = Counter()
    potable_per_day: Counter[str] = Counter()
    counted_until = rollable_through(now)
    for k in range(1, steps):
        for s, sensor in enumerate(SENSORS):
            seed_row = seed_rows[(k * len(SENSORS) + s) % len(seed_rows)]  # each used twice
            features, truth = list(seed_row[:-1]), int(seed_row[-1])
            when = now - k * EVERY - timedelta(minutes=7 * s + 1)
            if when > now - timedelta(days=SULFATE_SHIFT_DAYS) and features[sulfate] is not None:
                features[sulfate] += 50.0
            version = _served_version(when, now)
            right = luck.random() < (0.8 if version == "4" else 0.6)
            predicted = truth if right else 1 - truth
            rows.append((f"trend-{k}-{s}", sensor, *features, predicted, version, when))
            if floor_hour(when) < counted_until:  # the trend counts rolled-up hours only
                per_day[when.date().isoformat()] += 1
                potable_per_day[when.date().isoformat()] += predicted
            if k % SAMPLE_EVERY == (3 * s) % SAMPLE_EVERY:  # every 6 hours, 3 min after a reading
                sample = {"sample_id": f"trend-lab-{k}-{s}", "sensor_id": sensor}
                sample["sampled_at"] = (when + timedelta(minutes=3)).isoformat()
                sample["potability"] = truth
                sample.update(dict(zip(FEATURE_NAMES, features, strict=True)))
                samples.append(Row(len(samples) + 2, sample))
    values = (
        "(%s, 0, %s, "
        + ", ".join(["%s"] * len(FEATURE_COLUMNS))
        + ", %s, 0.5, 'water-potability', %s, 'local', %s, 3.0)"
    )
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        cur.execute(
            f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            "latency_ms) VALUES " + ", ".join([values] * len(chunk)),
            [v for row in chunk for v in row],
        )
    clean_db.commit()

    # lab samples through add_sample (the real local function), as `potability samples import`
    token = function_servers.regulator_token(home)
    outcome = import_rows(samples, Poster(env["ADD_SAMPLE_URL"], token), report=lambda _: None)
    assert (outcome.recorded, outcome.refused) == (len(samples), [])

    # today's readings through predict itself
    for s, sensor in enumerate(SENSORS):
        reading = dict(zip(FEATURE_NAMES, seed_rows[s][:-1], strict=True))
        answer = requests.post(
            env["PREDICT_URL"],
            json={"sensor_id": sensor, "reading": reading},
            headers={"Idempotency-Key": f"trend-today-{s}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    # quality control once a day at 03:30 UTC, as the daily pipeline's last step, then now
    # the first run's catch-up (its last 7 days) reaches back past the oldest reading
    first = (now - timedelta(days=DAYS - 6)).replace(hour=3, minute=30, second=0, microsecond=0)
    day = first
    while day < now:
        qc_job.run(clean_db, settings, day)
        day += timedelta(days=1)
    qc_job.run(clean_db, settings, now)

    yield {
        "now": now,
        "per_day": per_day,
        "potable_per_day": potable_per_day,
        "qc_days": {
            (first + timedelta(days=i)).date().isoformat() for i in range((now - first).days + 1)
        }
        | {now.date().isoformat()},
    }
    clean_db.rollback()
    cur = clean_db.cursor()
    cur.execute("DELETE FROM water.model_changes")
    cur.execute("DELETE FROM water.alerts")
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (RUN_ID,))
    clean_db.commit()


@pytest.fixture
def served(serve_status: Callable[[str], str], history: dict[str, Any]) -> str:
    """The status function, started after the history is in."""
    return serve_status(SERVICE)


def test_trends_in_headless_chromium_and_the_readme_screenshot(
    served: str, history: dict[str, Any], chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    trends = requests.get(served, params={"format": "json"}, timeout=30).json()["trends"]
    now = history["now"]
    # traffic: every day of the window, each the count of the rows of its rolled-up hours
    assert trends["days"] == 90 and len(trends["traffic"]) == 90
    assert trends["last_day"] == now.date().isoformat()
    by_day = {d["day"]: d for d in trends["traffic"]}
    for day, total in history["per_day"].items():
        assert by_day[day]["total"] == total, day
        assert by_day[day]["potable"] == history["potable_per_day"][day], day
    middle = (now - timedelta(days=DAYS // 2)).date().isoformat()
    assert by_day[middle]["hours_counted"] == 24
    assert by_day[(now - timedelta(days=60)).date().isoformat()]["total"] == 0
    # drift: one entry per day with a QC run (the day's last), Sulfate drifting since the shift
    assert {d["day"] for d in trends["drift"]} == history["qc_days"]
    sulfate = next(s for s in trends["drift_summary"] if s["feature"] == "Sulfate")
    assert sulfate["latest_status"] == "drift"
    since = datetime.fromisoformat(sulfate["drifting_since"]).replace(tzinfo=UTC)
    assert now - timedelta(days=SULFATE_SHIFT_DAYS + 1) <= since <= now
    # live precision per version and week, with intervals; the three changes on the axis
    versions = {r["model_version"] for r in trends["live_precision"]}
    assert versions == {"4", "5"}
    assert all(
        r["interval_95"][0] <= r["precision"] <= r["interval_95"][1]
        for r in trends["live_precision"]
        if r["precision"] is not None
    )
    assert [(c["action"], c["version"]) for c in trends["model_changes"]] == [
        ("promoted", "4"),
        ("promoted", "5"),
        ("rolled_back", "4"),
    ]

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.set_default_timeout(10_000)
            response = page.goto(served, wait_until="load")
            assert response is not None and response.status == 200
            for chart in ("chart-trend-precision", "chart-trend-drift", "chart-trend-traffic"):
                svg = page.get_by_test_id(chart).locator(".wide svg")
                box = svg.bounding_box()
                assert box is not None and box["width"] > 600 and box["height"] > 150, chart
                # each chart says what it shows in words (<desc>) and marks the three changes
                assert svg.locator("desc").text_content(), chart
                assert svg.locator('[data-testid="model-change-mark"]').count() == 3, chart
            wide = page.get_by_test_id("chart-trend-precision").locator(".wide svg")
            shown = {
                wide.locator('[data-testid="precision-series"]')
                .nth(i)
                .get_attribute("data-version")
                for i in range(wide.locator('[data-testid="precision-series"]').count())
            }
            assert shown == {"4", "5"}
            points = wide.locator('[data-testid="precision-point"]').count()
            assert points == sum(r["precision"] is not None for r in trends["live_precision"])
            bars = page.get_by_test_id("chart-trend-traffic").locator(
                '.wide svg [data-testid="traffic-bar"]'
            )
            assert bars.count() == sum(d["total"] > 0 for d in trends["traffic"])
            row = page.locator('[data-testid="trend-drift-row"][data-feature="Sulfate"]')
            assert "drift" in row.inner_text()
            assert row.get_by_test_id("drifting-since").inner_text() == sulfate["drifting_since"]
            # the text alternative: the tables hold every figure of the charts
            page.get_by_text("Live precision as a table").click()
            table = page.get_by_test_id("trend-precision-table")
            assert table.is_visible()
            assert table.locator("tbody tr").count() == len(trends["live_precision"])
            page.get_by_text("Live precision as a table").click()  # closed for the picture
            assert "ops@utility.example" not in page.content()

            page.screenshot(path=str(ARTIFACTS / "status-page-trends.png"), full_page=True)
            README_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(ARTIFACTS / "status-page-trends.png", README_SCREENSHOT)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(served, wait_until="load")
            overflow = phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page scrolls sideways on a phone by {overflow}px"
            narrow = phone.get_by_test_id("chart-trend-drift").locator(".narrow svg")
            box = narrow.bounding_box()
            assert box is not None and box["width"] > 300
            phone.screenshot(path=str(ARTIFACTS / "status-page-trends-phone.png"), full_page=True)
        finally:
            browser.close()
