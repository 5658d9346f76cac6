"""Step 1, export (components/export_step.py), run on the chain's own database."""

import hashlib
from pathlib import Path

from potability import db
from potability.governance import run_record


def test_export_writes_the_table_and_opens_the_run(step_chain) -> None:
    out, dataset = step_chain.outputs["export"], step_chain.artifacts["dataset"]
    conn = db.connect(step_chain.settings)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.water_potability")
        rows = cur.fetchone()[0]
    finally:
        conn.close()
    run = run_record.read_run(step_chain.settings, step_chain.run_id)
    text = Path(dataset.path).read_bytes()
    assert out.rows == rows == len(text.decode().strip().splitlines()) - 1  # a header, then rows
    assert out.sha256 == hashlib.sha256(text).hexdigest()
    assert dataset.metadata == {"rows": rows, "sha256": out.sha256, "format": "csv"}
    assert run is not None and (run.data_sha256, run.status) == (out.sha256, "running")
