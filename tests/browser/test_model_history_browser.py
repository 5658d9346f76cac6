"""The public model history (issue 22) in a real headless Chromium: a promotion by the daily
pipeline, a rollback by an operator with the alert raised around it, a hold with its
since-when - served by functions-framework from the functions' entry file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from potability import alerts, db
from potability.governance import model_changes as mc

MODEL = "browser-history-model"

pytestmark = pytest.mark.e2e


@pytest.fixture
def history(conn: db.Connection) -> Iterator[datetime]:
    now = datetime.now(UTC)
    cur = conn.cursor()
    cur.execute("DELETE FROM water.model_changes")  # this page shows every model's changes
    cur.execute("DELETE FROM water.alerts")  # ... and every alert raised around them
    evidence = {
        "family": "random_forest",
        "held_out_precision": 0.712,
        "held_out_precision_low": 0.62,
        "held_out_precision_high": 0.80,
        "probability_better": 0.96,
        "run_id": "run-5",
    }
    mc.record(
        conn,
        model_name=MODEL,
        action=mc.PROMOTED,
        actor=mc.AUTOMATIC,
        when=now - timedelta(days=3),
        version="4",
        evidence={**evidence, "held_out_precision": 0.69},
    )
    mc.record(
        conn,
        model_name=MODEL,
        action=mc.PROMOTED,
        actor=mc.AUTOMATIC,
        when=now - timedelta(days=1),
        version="5",
        previous_version="4",
        evidence=evidence,
    )
    alerts.insert(
        conn,
        alerts.Alert(
            alerts.LIVE_PRECISION_FLAGGED,
            f"{MODEL}/5/all",
            "low",
            "5",
            {"period": "all", "live_precision": 0.41, "matches": 30, "floor": 0.6},
        ),
        now - timedelta(hours=3),
    )
    mc.record(
        conn,
        model_name=MODEL,
        action=mc.ROLLED_BACK,
        actor="ops@utility.example",
        when=now - timedelta(hours=2),
        version="4",
        previous_version="5",
        reason="live precision fell to 41% on lab samples",
        evidence={**evidence, "held_out_precision": 0.69, "probability_better": None},
    )
    mc.record(
        conn,
        model_name=MODEL,
        action=mc.HELD,
        actor="ops@utility.example",
        when=now - timedelta(hours=1),
        reason="until the lab review",
    )
    mc.record(
        conn,
        model_name="old",
        action=mc.PROMOTED,
        actor=mc.AUTOMATIC,
        when=now - timedelta(days=120),
        version="1",
    )  # older than 90 days: not shown
    conn.commit()
    yield now
    conn.rollback()
    cur.execute("DELETE FROM water.model_changes WHERE model_name IN (%s, 'old')", (MODEL,))
    cur.execute("DELETE FROM water.alerts WHERE occurrence LIKE %s", (f"{MODEL}%",))
    conn.commit()


@pytest.fixture
def served(serve_status: Callable[[str], str], history: datetime) -> str:
    """Started after the rows are in: the status function caches what it read first."""
    return serve_status("history-browser-test")


def test_model_history_on_the_page_and_in_its_json(
    served: str, history: datetime, chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.set_default_timeout(10_000)
            assert page.goto(served, wait_until="load").status == 200
            held = page.get_by_test_id("model-held").inner_text()
            assert "held since" in held and "by operator" in held
            assert (history - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M") in held
            rows = page.locator('[data-testid="model-change"]')
            assert [rows.nth(i).get_attribute("data-action") for i in range(rows.count())] == [
                "held",
                "rolled_back",
                "promoted",
                "promoted",
            ]
            rollback = rows.nth(1).inner_text()
            assert "rolled back" in rollback and "v4" in rollback and "was v5" in rollback
            assert "operator" in rollback and "41% on lab samples" in rollback
            assert "ops@utility.example" not in page.content()  # a role, never a person
            assert "69.0%" in rollback and "62.0%" in rollback  # evidence with its interval
            assert "Live precision fell below the floor" in rollback  # the alert around it
            promoted = rows.nth(2).inner_text()
            assert "pipeline" in promoted and "P(better) 96%" in promoted
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(served, wait_until="load")
            assert (
                phone.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                <= 0
            )
            api = page.goto(served + "?format=json").json()["model_history"]
            assert api["days"] == 90 and api["held"]["by"] == "operator"
            assert [c["action"] for c in api["changes"]] == [
                "held",
                "rolled_back",
                "promoted",
                "promoted",
            ]
            back = api["changes"][1]
            assert (back["version"], back["previous_version"], back["by"]) == (
                "4",
                "5",
                "operator",
            )
            assert back["evidence"]["held_out_precision_interval"] == [0.62, 0.8]
            assert [a["event"] for a in back["alerts"]] == ["live_precision_flagged"]
        finally:
            browser.close()
