"""Scoring a compiled model: an onnxruntime session over ``compiled/model.onnx``, nothing else.

Kept apart from :mod:`potability.serving.compiled_model` (the converter, which needs
scikit-learn) so the model server can serve a compiled model without importing scikit-learn:
with scikit-learn and the estimator loaded the server held 330 MB under load, without them
227 MB (issue 34's target is 300 MB). The compile report (``compiled/compiled.json``) carries
what serving needs of the estimator - its threshold, classes and feature names - since
compilation records them (:func:`served_facts`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "compiled"
"""Folder inside the MLflow model directory."""
ONNX_FILE = "model.onnx"
REPORT_FILE = "compiled.json"
OUTPUT = "probabilities"
"""The graph's output: float64 [n, 2], columns in ``classes_`` order."""


class CompiledModel:
    """An onnxruntime session answering P(potable) for a float64 matrix."""

    def __init__(self, onnx_bytes: bytes, classes: Any) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread per run: requests are small and the server's threads give concurrency.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = OUTPUT if OUTPUT in outputs else outputs[-1]
        self.column = list(classes).index(1)

    def potable_probability(self, matrix: np.ndarray) -> np.ndarray:
        proba = self.session.run(
            [self.output], {self.input: np.ascontiguousarray(matrix, dtype=np.float64)}
        )[0]
        return np.asarray(proba, dtype=np.float64)[:, self.column]


def load(model_dir: str | Path, classes: Any) -> CompiledModel | None:
    """The compiled form stored in an MLflow model directory, or None if it has none."""
    path = Path(model_dir) / FOLDER / ONNX_FILE
    if not path.is_file():
        return None
    return CompiledModel(path.read_bytes(), classes)


def served_facts(model_dir: str | Path) -> dict[str, Any] | None:
    """``{"threshold", "classes", "feature_names"}`` from the compile report, or None when the
    model has no compiled form or was compiled before the report carried them."""
    path = Path(model_dir) / FOLDER / REPORT_FILE
    if not (Path(model_dir) / FOLDER / ONNX_FILE).is_file() or not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except ValueError:
        return None
    facts = {key: report.get(key) for key in ("threshold", "classes", "feature_names")}
    if not isinstance(facts["threshold"], (int, float)) or not facts["classes"]:
        return None
    return facts
