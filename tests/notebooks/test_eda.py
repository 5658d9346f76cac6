"""The EDA notebook never rots: committed without outputs, equal to its generator, and executed
end to end (headless kernel, the project's interpreter) against the session database; its
fallback to data/ is executed too, and its archive query on an archive of two days."""

from __future__ import annotations

import runpy
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from potability.inference import archive as inference_archive

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "eda.ipynb"
GENERATOR = ROOT / "notebooks" / "make_eda.py"


def _execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    # "python3" is ipykernel's own spec; jupyter_client starts it with this interpreter
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=180,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch, stack_home: Path) -> pytest.MonkeyPatch:
    """The kernel inherits this process's environment: point it at the test stack."""
    monkeypatch.setenv("POTABILITY_HOME", str(stack_home))
    monkeypatch.setenv("POTABILITY_ENV", "local")
    return monkeypatch


def test_committed_without_outputs_and_equal_to_its_generator() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert NOTEBOOK.read_text() == runpy.run_path(str(GENERATOR))["render"](), (
        "notebooks/eda.ipynb differs from notebooks/make_eda.py: run "
        f"{Path(sys.executable).name} notebooks/make_eda.py"
    )


def test_executes_end_to_end_on_the_training_table(kernel_env, clean_db, database_url: str) -> None:
    kernel_env.setenv("DATABASE_URL", database_url)
    notebook = _execute(nbformat.read(NOTEBOOK, as_version=4))
    text = _text(notebook)
    assert "source: database table water.water_potability" in text
    assert "potable share: 39.0%" in text  # the seed: 1278 of 3276
    images = sum(
        "image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", [])
    )
    assert images == 4  # balance, missing values, distributions, correlations
    assert not [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]


def test_falls_back_to_the_data_set_without_a_database(kernel_env, tmp_path: Path) -> None:
    kernel_env.setenv("DATABASE_URL", f"postgresql://postgres@/potability?host={tmp_path}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
    notebook.cells = notebook.cells[: first_code + 1]  # the loading cell is enough
    text = _text(_execute(notebook))
    assert "source: data/water_potability.csv (no database: DatabaseUnavailable)" in text
    assert "rows: 3276" in text


def _write_archive(root: Path, work: Path) -> None:
    """Two archived days, two sensors, three readings each, as the maintenance job writes."""
    store = inference_archive.LocalStore(root)
    ident = 0
    for day in (date(2026, 2, 27), date(2026, 3, 2)):
        rows = []
        for sensor in ("sensor-001", "sensor-002"):
            for i in range(3):
                ident += 1
                values = {f.name: None for f in inference_archive.SCHEMA}
                values.update(
                    id=ident,
                    request_id=f"r{ident}",
                    reading_index=0,
                    sensor_id=sensor,
                    predicted_class=int(i == 0),
                    probability=0.9 if i == 0 else 0.1,
                    model_name="water-potability",
                    model_version="1",
                    endpoint="local",
                    inferred_at=datetime(day.year, day.month, day.day, tzinfo=UTC)
                    + timedelta(hours=ident),
                    latency_ms=3.0,
                    caller="",
                )
                rows.append(tuple(values[f.name] for f in inference_archive.SCHEMA))
        written = inference_archive.write_file(
            work / "day.parquet", inference_archive.SCHEMA, [rows], day
        )
        store.put(inference_archive.object_name(day), written.path)


def test_the_archive_cell_runs_the_documented_query(kernel_env, tmp_path: Path) -> None:
    _write_archive(tmp_path / "archive", tmp_path)
    kernel_env.setenv("INFERENCE_ARCHIVE_URI", str(tmp_path / "archive"))
    kernel_env.setenv("DATABASE_URL", f"postgresql://postgres@/potability?host={tmp_path}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    notebook.cells = [notebook.cells[code[0]], notebook.cells[code[-1]]]  # loading, archive
    text = _text(_execute(notebook))
    assert "-- monthly-share: readings and potable share per sensor per month" in text
    assert "archive: 12 readings over 2 days" in text
    # one row per sensor and month, a third of each sensor's readings called potable
    for sensor in ("sensor-001", "sensor-002"):
        assert len([line for line in text.splitlines() if sensor in line]) == 2
    assert text.count("0.333") == 4  # display.precision 3 (the first cell)
