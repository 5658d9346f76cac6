"""A stopped database makes predict answer 503s; over the window that is ``function_errors``,
raised once per outage by the real functions-framework process, written once to its log and
POSTed once to the webhook - while every request still gets its prompt 503. The database
coming back clears it; a second outage is a second occurrence."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from potability import alerts, config
from potability.local import stack as local_stack

READING = {
    "ph": 7.08,
    "Hardness": 196.4,
    "Solids": 21000.0,
    "Chloramines": 7.1,
    "Sulfate": None,
    "Conductivity": 421.0,
    "Organic_carbon": 14.2,
    "Trihalomethanes": 66.4,
    "Turbidity": 3.9,
}


@pytest.fixture
def own_stack(
    tmp_path_factory: pytest.TempPathFactory, model_server_url: str, webhook
) -> Iterator[tuple[Path, dict[str, str]]]:
    """Its own embedded PostgreSQL (this test stops it) and the functions on it, alerting to
    the webhook after 6 requests of which at least half failed."""
    from potability.local import function_servers

    home = tmp_path_factory.mktemp("alertstack")
    try:
        url = local_stack.start_database(home)
        local_stack.prepare_database(url)
        config.update_env(
            home,
            POTABILITY_ENV="local",
            DATABASE_URL=url,
            MODEL_SERVER_URL=model_server_url,
            ALERT_WEBHOOK_URL=webhook.url,
            ALERT_ERROR_MIN_REQUESTS="6",
            ALERT_ERROR_RATE="0.5",
            ALERT_ERROR_WINDOW_SECONDS="600",
        )
        yield home, function_servers.start(home)
    finally:
        local_stack.down(home)


def _predict(url: str, n: int) -> list[int]:
    codes = []
    for _ in range(n):
        r = requests.post(url, json={"sensor_id": "al-fn", "reading": READING}, timeout=30)
        codes.append(r.status_code)
    return codes


def _alert_lines(home: Path) -> list[dict[str, Any]]:
    lines = (home / "logs" / "fn-predict.log").read_text().splitlines()
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("alert"):
            found.append(record)
    return found


def test_a_stopped_database_alerts_once_per_outage(own_stack, webhook) -> None:
    home, env = own_stack
    url = env["PREDICT_URL"]
    assert _predict(url, 3) == [200] * 3

    assert local_stack.stop_database(home)
    started = time.perf_counter()
    codes = _predict(url, 12)
    assert codes == [503] * 12
    assert time.perf_counter() - started < 30  # alerting never holds the requests up

    got = webhook.wait_for(alerts.FUNCTION_ERRORS, 1)
    time.sleep(2)  # a duplicate would have arrived by now
    assert len(webhook.events(alerts.FUNCTION_ERRORS)) == 1
    body = got[0]
    assert body["figures"]["function"] == "predict" and body["severity"] == "ERROR"
    figures = body["figures"]  # raised as soon as 6+ requests are half errors, not later
    assert figures["requests"] >= 6 and 0.5 <= figures["error_rate"] < 0.75
    lines = [r for r in _alert_lines(home) if r["alert"] == alerts.FUNCTION_ERRORS]
    assert len(lines) == 1 and lines[0]["severity"] == "ERROR"

    # the database comes back: healthy answers bring the share under the threshold (clear)
    local_stack.start_database(home)
    assert _predict(url, 16) == [200] * 16
    # a second outage is a new occurrence: told again, once
    assert local_stack.stop_database(home)
    assert set(_predict(url, 30)) == {503}
    webhook.wait_for(alerts.FUNCTION_ERRORS, 2)
    time.sleep(2)
    assert len(webhook.events(alerts.FUNCTION_ERRORS)) == 2
