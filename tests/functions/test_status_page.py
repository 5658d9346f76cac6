"""The status page's templates (pure: a data dict in, HTML out): every database value escaped by
the template engine wherever it lands (text, attribute, SVG title), format characters made
visible, and the page's sections for a busy service. The numbers on a real database are
tests/functions/test_status.py's."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from functions.status_page import render_error_html, render_html, text

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<img src=x onerror=alert(1)>\"'&"


def _realistic() -> dict[str, Any]:
    """The render bench's data: 50 sensors, 3 model versions, 90 days of trends."""
    spec = importlib.util.spec_from_file_location(
        "status_render_bench", ROOT / "bench" / "status_render_bench.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.realistic_data()


@pytest.fixture(scope="module")
def realistic() -> dict[str, Any]:
    return _realistic()


def test_every_database_value_is_escaped_wherever_it_lands(realistic) -> None:
    data = copy.deepcopy(realistic)
    data["inferences"]["last_7d"]["by_sensor"][0]["sensor_id"] = HOSTILE  # chart and table
    data["inferences"]["last_24h"]["by_sensor"][0]["sensor_id"] = HOSTILE
    data["alerts"][0].update(title=HOSTILE, detail=HOSTILE, event=HOSTILE, severity=HOSTILE)
    data["model"].update(version=HOSTILE, family=HOSTILE)
    data["quality_control"]["live"][0]["model_version"] = HOSTILE
    data["quality_control"]["drift"]["features"][0]["feature"] = HOSTILE
    change = data["model_history"]["changes"][0]
    change.update(reason=HOSTILE, family=HOSTILE, version=HOSTILE, action=HOSTILE)
    data["model_history"]["held"] = {"since": data["generated_at"], "by": "x", "reason": HOSTILE}
    data["jobs"][0].update(job=HOSTILE, failing=True, failed_step=HOSTILE, error_class=HOSTILE)
    page = render_html(data)
    assert "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;&#39;&amp;" in page
    # no value closes an attribute: every attribute value is free of a raw quote
    for value in re.findall(r'="([^"]*)"', page):
        assert "<" not in value and ">" not in value


def test_format_characters_in_ids_are_shown_not_obeyed(realistic) -> None:
    """U+202E reverses the text after it: an id carrying it is shown with the escape visible."""
    assert text("north\u202e1-htuos") == "north\\u202e1-htuos"
    assert text("plain-id") == "plain-id" and text(None) == "\u2014"
    data = copy.deepcopy(realistic)
    data["inferences"]["last_7d"]["by_sensor"][0]["sensor_id"] = "north\u202e1-htuos"
    page = render_html(data)
    assert "\u202e" not in page and "north\\u202e1-htuos" in page


def test_the_realistic_page_has_every_section(realistic) -> None:
    page = render_html(realistic)
    assert "<script" not in page and "http" not in page
    for testid in (
        "model-version",
        "fresh-precision",
        "model-precision-interval",
        "inferences-24h-total",
        "live-precision-flag",
        "drift-flag",
        "pipeline-flag",
        "chart-hourly",
        "chart-daily",
        "chart-sensors",
        "chart-live-precision",
        "chart-drift",
        "model-history",
    ):
        assert f'data-testid="{testid}"' in page, testid
    assert page.count('data-testid="sensor-row"') == 50
    assert page.count('data-testid="alert"') == 3


def test_the_outage_page() -> None:
    page = render_error_html(5)
    assert "try again in 5 seconds" in page and "<script" not in page


def test_a_share_is_rounded_once_when_shown() -> None:
    """37 of 95 is 38.947%: rounding the JSON to 0.3895 first showed it as 39.0%."""
    from functions.status import _share
    from functions.status_page import pct

    assert pct(_share(37, 95)) == "38.9%"
    assert pct(_share(1, 3)) == "33.3%" and pct(_share(0, 0)) == "\u2014"
