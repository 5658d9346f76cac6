"""Step 6, quality control (components/quality_control.py): one QC run stored, summarised."""

import re
from datetime import UTC, datetime, timedelta

from components.quality_control import quality_control_component
from potability import db


def test_quality_control_stores_one_run_and_summarises_it(step_chain) -> None:
    conn = db.connect(step_chain.settings)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.water_potability WHERE source = 'lab'")
        lab = cur.fetchone()[0]
        summary = quality_control_component(
            run_id=step_chain.run_id, deploy_summary="deployed", database=step_chain.database
        )
        found = re.fullmatch(
            rf"{step_chain.run_id}: quality control run (\d+) after 'deployed': (\d+) lab "
            r"samples, 0 matched, below the precision floor: none, drift: .*",
            summary,
        )
        assert found, summary
        conn.rollback()
        cur.execute(
            "SELECT computed_at, lab_samples FROM water.qc_runs WHERE id = %s",
            (int(found.group(1)),),
        )
        computed_at, lab_samples = cur.fetchone()
    finally:
        conn.close()
    assert int(found.group(2)) == lab_samples == lab
    assert abs(datetime.now(UTC) - computed_at) < timedelta(minutes=5)
