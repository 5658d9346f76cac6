"""``potability samples import FILE.csv`` against the real add_sample function (functions-framework
process on loopback, the session's PostgreSQL): good, bad and repeated rows, re-runs, tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from potability import db

HEADER = (
    "sample_id,sampled_at,sensor_id,ph,Hardness,Solids,Chloramines,Sulfate,"
    "Conductivity,organic_carbon,TRIHALOMETHANES,Turbidity,Potability"
)


def _row(
    sample_id: str,
    ph: str = "7.1",
    potability: str = "1",
    sensor: str = "plant-7",
    sampled_at: str = "2024-05-01T09:30:00Z",
) -> str:
    return f"{sample_id},{sampled_at},{sensor},{ph},196.4,21000,7.1,,421,14.2,66.4,3.9,{potability}"


GOOD = [_row("csv-good-1"), _row("csv-good-2", sensor=""), _row("csv-good-3", ph="")]
CSV = (
    "\n".join(
        [
            HEADER,  # line 1
            GOOD[0],  # line 2
            _row("csv-bad-ph", ph="abc"),  # line 3: refused, batch 1
            GOOD[1],  # line 4
            _row("csv-bad-label", potability="2"),  # line 5: refused, batch 2 with line 4
            "",  # line 6: blank, skipped
            _row("csv-good-1", ph="6.0"),  # line 7: same id, other values (409)
            GOOD[2],  # line 8
            _row("csv-bad-time", sampled_at="yesterday"),  # line 9
            "csv-short,2024-05-01T09:30:00Z,plant-7",  # line 10: too few cells
        ]
    )
    + "\n"
)


def _import(
    home: Path, path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ADD_SAMPLE_URL", "REGULATOR_TOKEN", "DATABASE_URL")
    }
    environ.update(POTABILITY_HOME=str(home), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "potability.cli", "samples", "import", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )


def _lab_ids(conn: db.Connection) -> dict[str, float | None]:
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT sample_id, ph FROM water.water_potability WHERE source = 'lab'")
    rows = dict(cur.fetchall())
    conn.rollback()
    return rows


def test_good_rows_recorded_bad_rows_reported_by_line_and_rerun_is_safe(
    local_functions, clean_db, tmp_path: Path
) -> None:
    home, _ = local_functions
    path = tmp_path / "lab.csv"
    path.write_text(CSV)
    first = _import(home, path, "--batch-size", "2")
    assert first.returncode == 1, first.stdout + first.stderr
    out = first.stdout
    assert "8 rows: 3 recorded, 0 already recorded, 5 refused" in out
    assert "line 3: ph:" in out
    assert "line 5: potability: must be the integer 0 or 1" in out
    assert "line 7: sample_id: a different sample with this id is already recorded" in out
    assert "line 9: sampled_at:" in out
    assert "line 10: has 3 cells, the header 13" in out
    assert "rows 1-2 of 8:" in out and "rows 7-8 of 8:" in out  # progress per batch
    assert _lab_ids(clean_db) == {"csv-good-1": 7.1, "csv-good-2": 7.1, "csv-good-3": None}

    second = _import(home, path, "--batch-size", "2")  # the same file again: nothing twice
    assert second.returncode == 1
    assert "8 rows: 0 recorded, 3 already recorded, 5 refused" in second.stdout
    assert len(_lab_ids(clean_db)) == 3

    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, *GOOD, _row("csv-good-4")]) + "\n")
    third = _import(home, good)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "4 rows: 1 recorded, 3 already recorded, 0 refused" in third.stdout
    assert len(_lab_ids(clean_db)) == 4


def test_token_from_the_environment_or_a_file_and_a_wrong_one_stops_at_once(
    local_functions, clean_db, tmp_path: Path
) -> None:
    home, _ = local_functions
    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, _row("csv-token-1")]) + "\n")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    refused = _import(home, good, "--token-file", str(wrong))
    assert refused.returncode == 2
    assert "refused the regulator token (403" in refused.stderr
    assert len(_lab_ids(clean_db)) == 0

    token = (home / "regulator-token").read_text().strip()
    from_env = _import(home, good, "--token-file", str(home / "regulator-token"))
    assert from_env.returncode == 0, from_env.stderr
    again = _import(home, good, env={"REGULATOR_TOKEN": token})
    assert again.returncode == 0 and "1 already recorded" in again.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (HEADER.replace("Turbidity", "Turbidty") + "\n", "unknown column(s) ['Turbidty']"),
        (HEADER.replace(",Potability", "") + "\n", "missing column(s) ['potability']"),
    ],
)
def test_an_unusable_file_is_refused_before_anything_is_sent(
    local_functions, clean_db, tmp_path: Path, text: str, message: str
) -> None:
    home, _ = local_functions
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = _import(home, path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(_lab_ids(clean_db)) == 0


def test_an_unreachable_function_is_reported_after_bounded_retries(
    local_functions, tmp_path: Path, dead_port: int
) -> None:
    from potability import samples_import

    path = tmp_path / "good.csv"
    path.write_text("\n".join([HEADER, _row("csv-dead-1")]) + "\n")
    pauses: list[float] = []
    poster = samples_import.Poster(
        f"http://127.0.0.1:{dead_port}", "t", timeout=2, sleep=pauses.append
    )
    with pytest.raises(samples_import.ImportAborted) as err:
        samples_import.import_csv(path, poster.url, "t", poster=poster, report=lambda _: None)
    assert err.value.exit_code == 1 and "unavailable after 5 attempts" in str(err.value)
    assert len(pauses) == samples_import.RETRIES
