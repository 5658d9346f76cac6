"""The status page in a real headless Chromium, served by functions-framework from the same
entry file as the other functions, against the session's PostgreSQL.

Debian's ``chromium`` is required (tools/setup-test-tools.sh installs it); without it this test
fails, it does not skip. Screenshots go to ``test-artifacts/``; the README's picture
(``docs/status-page.png``) is written by tests/browser/test_trends_browser.py, from a stack
with five weeks of history.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from potability import db
from potability.config import Settings
from potability.features import FEATURE_COLUMNS
from potability.inference.rollup import floor_hour
from potability.quality import job as qc_job

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVICE = "status-browser-test"
RUNS = ("browser-test-champion", "browser-test-last")
SENSORS = ["north-reservoir", "east-main", "south-well", "west-tower"]

pytestmark = pytest.mark.e2e


def _insert(conn: db.Connection, settings: Settings, now: datetime) -> None:
    """A plausible week: readings from four sensors, lab samples, two pipeline runs, one QC run."""
    cur = conn.cursor()
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)", RUNS)
    cur.execute(
        "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, decision, "
        "model_name, champion_version, champion_family, champion_precision, champion_recall, "
        "training_rows) VALUES "
        "(%s, %s, %s, 'succeeded', 'first_champion', 'water-potability', '4', "
        "'random_forest', 0.74, 0.38, 3276), "
        "(%s, %s, %s, 'succeeded', 'champion_kept', 'water-potability', '4', "
        "'random_forest', 0.74, 0.38, 3290)",
        (
            RUNS[0],
            now - timedelta(days=9),
            now - timedelta(days=9) + timedelta(hours=1),
            RUNS[1],
            now - timedelta(seconds=3),
            now - timedelta(seconds=1),
        ),
    )
    cols = ", ".join(FEATURE_COLUMNS)
    # readings: real measurements (seed rows), turbidity nudged up to show a drift signal;
    # the "model" is right four times out of five
    hours = 7 * 24
    cur.execute(
        f"SELECT {cols}, potability FROM water.water_potability WHERE source = 'seed' "
        "ORDER BY id LIMIT %s",
        (hours * len(SENSORS),),
    )
    seed_rows = list(cur.fetchall())
    random.Random(7).shuffle(seed_rows)
    mistakes = random.Random(11)
    turbidity = FEATURE_COLUMNS.index("turbidity")
    rows: list[Any] = []
    truth: dict[tuple[int, int], int] = {}
    for k in range(hours):
        for s, sensor in enumerate(SENSORS):
            i = k * len(SENSORS) + s
            features = list(seed_rows[i][:-1])
            if features[turbidity] is not None:
                features[turbidity] = min(features[turbidity] + 0.45, 100.0)
            truth[k, s] = int(seed_rows[i][-1])
            predicted = truth[k, s] if mistakes.random() >= 0.2 else 1 - truth[k, s]
            when = now - timedelta(hours=k, minutes=7 * s + 1)
            rows.append((f"browser-{k}-{s}", sensor, *features, predicted, when))
    values = (
        "(%s, 0, %s, "
        + ", ".join(["%s"] * len(FEATURE_COLUMNS))
        + (", %s, 0.5, 'water-potability', '4', 'local', %s, 3.0)")
    )
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        cur.execute(
            f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            "latency_ms) VALUES " + ", ".join([values] * len(chunk)),
            [v for row in chunk for v in row],
        )
    for k in range(
        0, hours, 3
    ):  # a lab sample every 3 hours, sensors in turn, 3 min after a reading
        s = (k // 3) % len(SENSORS)
        sampled = now - timedelta(hours=k, minutes=7 * s + 1) + timedelta(minutes=3)
        cur.execute(
            "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, "
            "sampled_at, submitted_by, source, created_at) "
            "VALUES (%s, 7.1, %s, %s, %s, 'lab-chemist@utility.example', 'lab', %s)",
            (
                f"browser-sample-{k}",
                truth[k, s],
                SENSORS[s],
                sampled,
                min(sampled + timedelta(hours=2), now),
            ),
        )
    conn.commit()
    qc_job.run(conn, settings, now)


@pytest.fixture
def page_data(clean_db: db.Connection, settings: Settings) -> Iterator[dict[str, Any]]:
    """The rows, and the numbers the page must show, read straight from the database."""
    now = datetime.now(UTC)
    _insert(clean_db, settings, now)
    cur = clean_db.cursor()
    cur.execute(
        "SELECT count(*), count(*) FILTER (WHERE predicted_class = 1) FROM water.water_inferences "
        "WHERE inferred_at >= %s",
        (floor_hour(now) - timedelta(hours=23),),  # 24 clock hours
    )
    day_total, day_potable = cur.fetchone()
    cur.execute(
        "SELECT count(*) FROM water.water_inferences WHERE inferred_at >= %s",
        (floor_hour(now) - timedelta(hours=7 * 24 - 1),),
    )
    week_total = cur.fetchone()[0]
    cur.execute(
        "SELECT count(*) FROM water.water_potability WHERE source = 'lab' AND created_at > %s",
        (now - timedelta(days=7),),
    )
    lab_week = cur.fetchone()[0]
    cur.execute(
        "SELECT m.live_precision FROM water.qc_live_metrics m "
        "JOIN water.qc_runs r ON r.id = m.run_id "
        "WHERE m.model_version = '4' AND m.period = 'all' ORDER BY r.computed_at DESC LIMIT 1"
    )
    live = cur.fetchone()[0]
    yield {
        "day_total": day_total,
        "day_share": day_potable / day_total,
        "week_total": week_total,
        "lab_week": lab_week,
        "live_precision": live,
    }
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)", RUNS)
    clean_db.commit()


@pytest.fixture
def served(serve_status: Callable[[str], str]) -> str:
    """The status function (no in-process cache: each test's rows show at once)."""
    return serve_status(SERVICE)


def _launch(playwright: Any, chromium: str) -> Any:
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


def test_status_page_in_headless_chromium(
    served: str, page_data: dict[str, Any], chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p, chromium)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.set_default_timeout(10_000)
            response = page.goto(served, wait_until="load")
            assert response is not None and response.status == 200
            text = page.get_by_test_id
            assert text("model-version").inner_text() == "v4"
            assert text("model-precision").inner_text() == "74.0%"
            assert text("inferences-24h-total").inner_text() == str(page_data["day_total"])
            assert text("inferences-24h-potable-share").inner_text() == (
                f"{page_data['day_share'] * 100:.1f}%"
            )
            assert text("inferences-7d-total").inner_text() == str(page_data["week_total"])
            assert text("lab-samples-7d").inner_text() == str(page_data["lab_week"])
            assert (
                text("live-precision").inner_text() == f"{page_data['live_precision'] * 100:.1f}%"
            )
            assert text("pipeline-status").inner_text() == "succeeded"
            assert text("drift-count").inner_text().endswith(" of 9")  # every measurement has data
            assert page.locator('[data-testid="sensor-row"]').count() == len(SENSORS)
            for chart in (
                "chart-hourly",
                "chart-daily",
                "chart-sensors",
                "chart-drift",
                "chart-live-precision",
            ):
                box = text(chart).first.locator(".wide svg").bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 50, chart
            body = page.content()
            assert "lab-chemist@" not in body and "browser-sample-" not in body
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)

            phone = browser.new_page(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            phone.goto(served, wait_until="load")
            overflow = phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page scrolls sideways on a phone by {overflow}px"
            assert phone.get_by_test_id("inferences-24h-total").is_visible()
            # phones get the narrow rendering of each chart, at full width
            narrow = phone.get_by_test_id("chart-hourly").locator(".narrow svg").bounding_box()
            assert narrow is not None and narrow["width"] > 300
            assert not phone.get_by_test_id("chart-hourly").locator(".wide svg").is_visible()
            phone.screenshot(path=str(ARTIFACTS / "status-page-phone.png"), full_page=True)

            api = page.goto(served + "?format=json")
            assert api is not None and api.headers["content-type"].startswith("application/json")
            assert api.json()["inferences"]["last_24h"]["total"] == page_data["day_total"]
        finally:
            browser.close()


LONG_SENSOR = "plant-7/outlet-WWWW-main-" + "m" * 103  # 128 characters, the longest accepted


@pytest.fixture
def few_readings(clean_db: db.Connection, settings: Settings) -> None:
    """Twelve readings (drift needs 50), half of them from a sensor with a 128-character id."""
    now = datetime.now(UTC)
    cur = clean_db.cursor()
    cols = ", ".join(FEATURE_COLUMNS)
    cur.execute(
        f"SELECT {cols} FROM water.water_potability WHERE source = 'seed' ORDER BY id LIMIT 12"
    )
    for i, features in enumerate(cur.fetchall()):
        cur.execute(
            f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            "latency_ms) VALUES (%s, 0, %s, "
            + ", ".join(["%s"] * len(FEATURE_COLUMNS))
            + ", 1, 0.7, 'water-potability', '4', 'local', %s, 3.0)",
            (
                f"few-{i}",
                LONG_SENSOR if i % 2 else "east-main",
                *features,
                now - timedelta(minutes=10 * i + 1),
            ),
        )
    clean_db.commit()
    qc_job.run(clean_db, settings, now)


def test_few_readings_say_not_enough_data_and_long_ids_stay_inside(
    served: str, few_readings: None, chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    assert len(LONG_SENSOR) == 128
    with sync_playwright() as p:
        browser = _launch(p, chromium)
        try:
            for viewport in ({"width": 1000, "height": 900}, {"width": 390, "height": 844}):
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(10_000)
                page.goto(served, wait_until="load")
                card = page.get_by_test_id("drift-count")
                assert card.inner_text() == "not enough data"
                assert page.get_by_test_id("drift-flag").inner_text() == "not enough data"
                assert "stable" not in card.locator("xpath=..").inner_text()
                chart = page.get_by_test_id("chart-sensors").locator("svg:visible")
                svg_box = chart.bounding_box()
                labels = chart.locator("text[text-anchor='end']")
                assert labels.count() == 2
                for i in range(labels.count()):
                    box = labels.nth(i).bounding_box()
                    assert box is not None and box["x"] >= svg_box["x"] - 0.5, (viewport, box)
                long_label = chart.locator("text[text-anchor='end']", has_text="plant-7/outlet")
                shown = long_label.evaluate("e => e.lastChild.textContent")  # SVG: no innerText
                assert shown.endswith("\u2026") and LONG_SENSOR.startswith(shown[:-1]), shown
                assert long_label.locator("title").text_content() == LONG_SENSOR  # the tooltip
                cells = page.locator('[data-testid="sensor-row"] td.id').all_inner_texts()
                assert LONG_SENSOR in cells
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
                page.screenshot(
                    path=str(ARTIFACTS / f"status-page-few-{viewport['width']}.png"), full_page=True
                )
                page.close()
        finally:
            browser.close()
