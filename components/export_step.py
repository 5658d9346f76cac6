"""Step 1, export: ``water.water_potability`` -> a CSV Dataset (:func:`training.dataset.export`),
and the run's row opened in ``water.pipeline_runs``."""

from typing import NamedTuple

from kfp.dsl import Dataset, Output


def export_component(
    run_id: str,
    database: dict,
    dataset: Output[Dataset],
    # KFP reads the step's outputs from this functional NamedTuple; mypy takes no call here.
) -> NamedTuple("ExportOutputs", [("rows", int), ("sha256", str)]):  # type: ignore[valid-type]
    """Export the training table to ``dataset`` and open the run's row in pipeline_runs."""
    from collections import namedtuple
    from pathlib import Path

    from components.runtime import failure_recorded, step_settings
    from potability.governance import run_record
    from training.dataset import export

    settings = step_settings(database)
    with failure_recorded(settings, run_id, "export"):
        result = export(settings, Path(dataset.path))
        dataset.metadata.update({"rows": result.rows, "sha256": result.sha256, "format": "csv"})
        run_record.start_run(settings, run_id, result.sha256, result.rows)
    ExportOutputs = namedtuple("ExportOutputs", ["rows", "sha256"])
    return ExportOutputs(result.rows, result.sha256)
