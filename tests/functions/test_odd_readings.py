"""Extreme-but-legal readings through predict, then the jobs (issue 29).

A public API fuzzer found that Solids = 5e-324 - a subnormal float inside the valid range,
answered 200 by predict - made the hourly cell rollup and ``potability qc`` fail for a week.
Here every float class the API accepts, on every feature (subnormals, the minimum normal, both
edges and their inner neighbours, negative zero), goes through the real predict handler into
the log; then ``potability maintenance`` and ``potability qc`` must succeed on it, their drift
cells counting every one of those readings."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from fn_support import reading

from potability import db, jobs
from potability.config import Settings
from potability.features import FEATURES
from potability.inference import log as inference_log
from potability.inference import rollup as inference_rollup
from potability.quality import job as qc_job


def _legal_odd_values(lo: float, hi: float) -> list[float]:
    return [
        0.0,
        -0.0,
        math.nextafter(0.0, 1.0),  # 5e-324
        math.nextafter(sys.float_info.min, 0.0),  # the largest subnormal
        sys.float_info.min,
        math.nextafter(sys.float_info.min, 1.0),
        1e-300,
        math.nextafter(lo, math.inf),
        hi,
        math.nextafter(hi, -math.inf),
    ]


def test_subnormal_and_edge_readings_pass_predict_then_maintenance_and_qc(
    client: Any, clean_db: db.Connection, fn_settings: Settings
) -> None:
    readings = [
        reading(**{spec.name: value})
        for spec in FEATURES
        for value in _legal_odd_values(spec.minimum, spec.maximum)
    ]
    response = client.post("/predict", json={"sensor_id": "fuzz-1", "readings": readings})
    assert response.status_code == 200, response.json
    assert len(response.json["predictions"]) == len(readings)
    cur = clean_db.cursor()
    cur.execute("SELECT count(*), min(solids) FROM water.water_inferences")
    logged, smallest = cur.fetchone()
    assert logged == len(readings) and smallest == -0.0
    clean_db.commit()

    started = datetime.now(UTC)
    later = started + timedelta(hours=2)  # the readings' hour is complete: rolled up, cells
    try:
        report = inference_log.run_maintenance(fn_settings, now=later)
        assert report.hours_rolled_up > 0
        hour = inference_rollup.floor_hour(started)
        cur.execute(
            "SELECT feature, sum(readings)::int FROM water.inference_hourly_cells "
            "WHERE hour = %s GROUP BY 1 ORDER BY 1",
            (hour,),
        )
        assert [list(r) for r in cur.fetchall()] == [[k, len(readings)] for k in range(9)]
        cur.execute("SELECT count(*) FROM water.inference_quarantine")
        assert cur.fetchone()[0] == 0  # nothing needed quarantine: every value has a cell
        clean_db.commit()
        conn = db.connect(fn_settings)
        try:
            result = qc_job.run(conn, fn_settings, later)
        finally:
            conn.close()
        assert result.run_id > 0
        states = {s.job: s for s in jobs.status(clean_db)}
        assert not states[jobs.MAINTENANCE].failing and not states[jobs.QC].failing
    finally:
        clean_db.rollback()
        cur = clean_db.cursor()
        cur.execute("DELETE FROM water.qc_runs WHERE computed_at = %s", (later,))
        cur.execute("DELETE FROM water.alerts WHERE raised_at >= %s", (started,))
        clean_db.commit()
