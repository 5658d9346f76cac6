"""The champion compiled to ONNX: the whole scikit-learn pipeline scored by onnxruntime.

Why: a 200-tree forest costs ~10 ms of Python CPU per reading through scikit-learn, and every
millisecond is billed on the Vertex endpoint. onnxruntime runs the same imputer -> scaler ->
classifier (-> calibration) graph in C++.

What is compiled: the *probability* model - the pipeline inside
``TunedThresholdClassifierCV``/``FixedThresholdClassifier``. The tuned threshold stays in
Python (:func:`potability.model_server.decision_threshold`), applied to the ONNX P(potable).

Where it lives: ``compiled/model.onnx`` (+ ``compiled/compiled.json``, what was checked) inside
the MLflow model's own artifact directory, written by :func:`attach` right after the model is
logged (``components.train.log_candidate``), so the version registered from it carries it, and
Vertex's copy of the model directory (``AIP_STORAGE_URI``) has it too.

Precision (``skl2onnx`` converters, double-precision input):

* imputation, scaling, polynomial features, logistic regression and soft voting: float64
  graphs (ONNX's ``Imputer`` op is float32-only in onnxruntime, so :func:`_double_imputer`
  writes the median fill as ``Where(IsNaN(x), medians, x)`` in float64);
* tree ensembles (decision tree, random forest, extra trees, histogram gradient boosting):
  ``ai.onnx.ml`` opset 3 stores thresholds and leaf weights as float64 tensors, but
  onnxruntime's ``TreeEnsembleClassifier`` returns float32 probabilities, which are cast back
  to float64 (:func:`_cast_tree_probabilities`): probabilities in [0, 1] are then off by at
  most half a float32 ulp of 1, 6e-8;
* SVM: onnxruntime's ``SVMClassifier`` computes the kernel sums in float32, so the Platt
  sigmoid on top is off by a few 1e-7.

:func:`compile_estimator` compares the graph with scikit-learn on the rows it is given (the
training rows at train time) and refuses a graph that differs by more than
:data:`TOLERANCE`; the model server then falls back to scikit-learn with a warning.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "compiled"
"""Folder inside the MLflow model directory."""
ONNX_FILE = "model.onnx"
REPORT_FILE = "compiled.json"
TOLERANCE = 1e-6
"""Largest |P_onnx - P_sklearn| accepted on the check rows."""
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""ai.onnx.ml 3: tree thresholds and weights as float64 tensors (``nodes_values_as_tensor``)."""


class NotConvertible(Exception):
    """The estimator cannot be compiled faithfully; serve it with scikit-learn."""


def probability_model(estimator: Any) -> Any:
    """The estimator whose ``predict_proba`` is compiled: inside threshold wrappers."""
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    while isinstance(estimator, (TunedThresholdClassifierCV, FixedThresholdClassifier)):
        estimator = estimator.estimator_
    return estimator


def _double_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer in float64: ``Where(IsNaN(x), statistics_, x)``."""
    from skl2onnx.proto import onnx_proto

    imputer = operator.raw_operator
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    if getattr(imputer, "add_indicator", False) or np.isnan(stats).any():
        raise NotConvertible("SimpleImputer with indicators or all-missing columns")
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise NotConvertible("SimpleImputer whose missing marker is not NaN")
    source = operator.inputs[0].full_name
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(fill, onnx_proto.TensorProto.DOUBLE, [stats.size], stats.tolist())
    missing = scope.get_unique_variable_name("missing")
    container.add_node("IsNaN", [source], [missing], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [missing, fill, source], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Where"))


def _cast_tree_probabilities(model: Any) -> Any:
    """Cast ``TreeEnsembleClassifier``'s float32 probabilities to the float64 skl2onnx declared.

    onnxruntime implements the op with float32 outputs only, while skl2onnx types them
    float64 for a float64 input (decision tree, extra trees, gradient boosting), which
    onnxruntime refuses to load.
    """
    from onnx import TensorProto, helper

    declared_types = {v.name: v.type.tensor_type.elem_type
                      for v in [*model.graph.output, *model.graph.value_info]}
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        if (node.op_type == "TreeEnsembleClassifier" and len(node.output) > 1
                and declared_types.get(node.output[1]) == TensorProto.DOUBLE):
            declared = node.output[1]
            node.output[1] = f"{declared}_float32"
            nodes.append(helper.make_node("Cast", [node.output[1]], [declared],
                                          to=TensorProto.DOUBLE, name=f"{declared}_to_double"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _conversion_copy(model: Any) -> Any:
    """A shallow copy skl2onnx accepts, with unchanged probabilities.

    skl2onnx refuses soft ``VotingClassifier(flatten_transform=True)``; the flag only shapes
    ``transform``'s output, never ``predict_proba``.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        clone = copy.copy(model)
        clone.steps = [(name, _conversion_copy(step)) for name, step in model.steps]
        return clone
    if isinstance(model, VotingClassifier) and model.flatten_transform:
        clone = copy.copy(model)
        clone.flatten_transform = False
        return clone
    return model


def to_onnx(estimator: Any, n_features: int) -> bytes:
    """The serialized ONNX graph of ``estimator``'s probability model (float64 input ``X``)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.impute import SimpleImputer

    model = _conversion_copy(probability_model(estimator))
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    try:
        onx = convert_sklearn(
            model, initial_types=[("X", DoubleTensorType([None, n_features]))],
            target_opset=TARGET_OPSET, options={id(final): {"zipmap": False}},
            custom_conversion_functions={SimpleImputer: _double_imputer},
        )
    except NotConvertible:
        raise
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        raise NotConvertible(f"{type(final).__name__}: {type(exc).__name__}: {exc}") from exc
    return _cast_tree_probabilities(onx).SerializeToString()


class CompiledModel:
    """An onnxruntime session answering P(potable) for a float64 matrix."""

    def __init__(self, onnx_bytes: bytes, classes: Any) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread per run: requests are small and the server's threads give concurrency.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(onnx_bytes, options,
                                                    providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "probabilities" if "probabilities" in outputs else outputs[-1]
        self.column = list(classes).index(1)

    def potable_probability(self, matrix: np.ndarray) -> np.ndarray:
        proba = self.session.run([self.output], {self.input: np.ascontiguousarray(
            matrix, dtype=np.float64)})[0]
        return np.asarray(proba, dtype=np.float64)[:, self.column]


def max_difference(estimator: Any, compiled: CompiledModel, x: np.ndarray) -> float:
    """Largest |P_onnx - P_sklearn| of P(potable) over the rows of ``x``."""
    column = list(estimator.classes_).index(1)
    reference = probability_model(estimator).predict_proba(x)[:, column]
    return float(np.max(np.abs(compiled.potable_probability(x) - reference)))


@dataclass(frozen=True)
class Compiled:
    """A verified compiled form and what its check found."""

    onnx: bytes
    report: dict[str, Any]


def compile_estimator(estimator: Any, x_check: Any) -> Compiled:
    """Convert and verify on ``x_check`` (raises :class:`NotConvertible` beyond tolerance)."""
    import onnxruntime
    import skl2onnx

    x = np.asarray(x_check, dtype=np.float64)
    onnx_bytes = to_onnx(estimator, x.shape[1])
    try:
        compiled = CompiledModel(onnx_bytes, estimator.classes_)
        difference = max_difference(estimator, compiled, x)
    except Exception as exc:  # onnxruntime refuses a graph: InvalidGraph, Fail, NotImplemented
        raise NotConvertible(f"onnxruntime cannot run the graph: {exc}") from exc
    if not difference <= TOLERANCE:
        raise NotConvertible(f"ONNX probabilities differ from scikit-learn's by {difference:.3g} "
                             f"(> {TOLERANCE:g}) on the check rows")
    return Compiled(onnx_bytes, {
        "format": "onnx", "file": ONNX_FILE, "input": "X float64 [n, 9] in FEATURE_NAMES order",
        "max_abs_difference": difference, "rows_checked": int(x.shape[0]),
        "tolerance": TOLERANCE, "skl2onnx": skl2onnx.__version__,
        "onnxruntime": onnxruntime.__version__, "target_opset": TARGET_OPSET,
    })


def write(compiled: Compiled, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ONNX_FILE).write_bytes(compiled.onnx)
    (folder / REPORT_FILE).write_text(json.dumps(compiled.report, indent=2))


def attach(model_id: str, estimator: Any, x_check: Any, client: Any = None) -> dict[str, Any]:
    """Compile ``estimator`` and store it in the logged MLflow model ``model_id`` (``compiled/``).

    Returns the report (``{"format": "none", "reason": ...}`` if it cannot be compiled: the
    model is then served by scikit-learn, and the reason is logged with the run).
    """
    from mlflow import MlflowClient

    try:
        compiled = compile_estimator(estimator, x_check)
    except NotConvertible as exc:
        log.warning("not compiled, will be served by scikit-learn: %s", exc)
        return {"format": "none", "reason": str(exc)}
    with tempfile.TemporaryDirectory() as tmp:
        write(compiled, Path(tmp))
        (client or MlflowClient()).log_model_artifacts(model_id, tmp, artifact_path=FOLDER)
    return compiled.report


def attach_to_uri(model_uri: str, estimator: Any, x_check: Any) -> dict[str, Any]:
    """:func:`attach` for a logged model named by its ``models:/m-<id>`` URI (MLflow 3)."""
    if not model_uri.startswith("models:/m-"):
        log.warning("not compiled: %s is not a logged-model URI", model_uri)
        return {"format": "none", "reason": f"not a logged-model URI: {model_uri}"}
    return attach(model_uri.removeprefix("models:/"), estimator, x_check)


def load(model_dir: str | Path, classes: Any) -> CompiledModel | None:
    """The compiled form stored in an MLflow model directory, or None if it has none."""
    path = Path(model_dir) / FOLDER / ONNX_FILE
    if not path.is_file():
        return None
    return CompiledModel(path.read_bytes(), classes)
