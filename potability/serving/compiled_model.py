"""The champion compiled to ONNX: the whole scikit-learn model scored by onnxruntime.

Why: a 200-tree forest costs ~10 ms of Python CPU per reading through scikit-learn, and every
millisecond is billed on the Vertex endpoint. onnxruntime runs the same imputer -> scaler ->
classifier -> calibration (-> vote) graph in C++.

What is compiled: the *probability* model - what is inside
``TunedThresholdClassifierCV``/``FixedThresholdClassifier``. The threshold stays in Python
(:func:`potability.model.decision_threshold`), applied to the ONNX P(potable).

Every shape :mod:`training.modeling` trains is covered: each family's pipeline inside
``OOFCalibratedClassifier`` (:mod:`potability.model`; Platt as a one-feature
``LogisticRegression`` or isotonic), the shape of models trained before it
(``CalibratedClassifierCV``, sigmoid or isotonic, ``ensemble`` False or True), and the soft
vote of pipelines (histogram gradient boosting with its missing-value routing included). The
graph is built here, operator by operator, from the fitted attributes, by one rule: **do the
arithmetic scikit-learn does, in float64, in the same order**. Why not ``skl2onnx``'s
converters (1.20, read in ``skl2onnx/operator_converters/``): onnxruntime's tree and SVM
operators return float32 (``TreeEnsembleClassifier``, ``SVMClassifier``), which the steep
segments of an isotonic map amplify far beyond 1e-6; its isotonic calibration takes the
*nearest* threshold (``ArgMin``) where scikit-learn interpolates linearly; and its
``CalibratedClassifierCV`` converter looks the calibrated estimator up by its class, which a
pipeline is not (measured with skl2onnx: the calibrated SVM family differed by 0.59).

How each piece stays exact (tests/potability/serving/test_compiled_model.py checks every family x
calibration method and the vote on the whole data set plus 600 rows with a reading missing;
largest differences measured: 0 for the tree families, ~1e-16 sigmoid / ~1e-14 isotonic for
logistic regression and the vote, ~1e-13 / ~1e-11 for the SVM - against a tolerance of 1e-6;
promote checks again on the held-out rows before storing the graph):

* imputation ``Where(IsNaN(x), medians, x)``, scaling ``(x - mean) / scale``, polynomial
  terms (products of two columns): the same float64 operations, so the same bits;
* trees (decision tree, random forest, extra trees, histogram gradient boosting): onnxruntime
  only *finds the leaf* - a ``TreeEnsembleRegressor`` whose output per tree is the leaf's node
  id (an integer, exact in float32), with float64 thresholds (``ai.onnx.ml`` opset 3,
  ``nodes_values_as_tensor``), scikit-learn's comparison ``x <= threshold`` (scikit-learn
  trees compare the float32-rounded input, so the graph rounds it too; histogram gradient
  boosting compares float64) and its missing-value direction per node
  (``nodes_missing_value_tracks_true``). The float64 leaf values are then gathered by those
  ids and summed tree after tree with ``CumSum`` (sequential, like scikit-learn's loop;
  boosting starts from its baseline), a forest divided by its number of trees: bit-identical
  probabilities;
* logistic regression ``expit(x @ coef + intercept)`` and the RBF SVM's decision function
  ``sum_j dual_j exp(-gamma |x - sv_j|^2) + intercept`` (``|x - sv|^2`` as
  ``|x|^2 + |sv|^2 - 2 x.sv``): float64 matrix products, whose summation order differs from
  BLAS/libsvm by rounding only (~1e-15);
* our calibration (``OOFCalibratedClassifier``): Platt ``expit(s coef + intercept)`` (the
  logistic regression's own arithmetic on one feature), isotonic as below;
* calibration as scikit-learn's ``_CalibratedClassifier``: sigmoid ``expit(-(a s + b))``;
  isotonic ``np.interp`` on the clipped score (segment found by counting thresholds <= s, an
  exact threshold hit returns its value, as ``np.interp`` does); the mean over calibrated
  classifiers, the soft vote's mean over members.

:func:`compile_estimator` still compares the graph with scikit-learn on the rows it is given
and refuses one that differs by more than :data:`TOLERANCE`; an estimator outside these
shapes (any class not handled below, e.g. an SVC's libsvm Platt ``predict_proba``) raises
:class:`NotConvertible`, and the model server then scores with scikit-learn and logs a
warning. The converter reads fitted attributes, some private (``HistGradientBoosting
._predictors``, ``SVC._gamma``): scikit-learn is pinned by uv.lock, and the parity check
guards an upgrade.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from potability.features import FEATURE_NAMES
from potability.model import (
    DECISION,
    PROBA,
    OOFCalibratedClassifier,
    calibrated_response,
    decision_threshold,
    probability_model,
)
from potability.serving.onnx_scoring import (  # noqa: F401 - re-exported: one place to look
    FOLDER,
    ONNX_FILE,
    OUTPUT,
    REPORT_FILE,
    CompiledModel,
    load,
)

log = logging.getLogger(__name__)

TOLERANCE = 1e-6
"""Largest |P_onnx - P_sklearn| accepted on the check rows."""
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""ai.onnx.ml 3: tree thresholds as float64 tensors (``nodes_values_as_tensor``)."""
FLOAT, DOUBLE, INT64 = 1, 11, 7
"""``onnx.TensorProto`` element types (for ``Cast``)."""
CHECK_BATCH = 1000
"""Rows per onnxruntime call in the parity check (the model server's largest request)."""


class NotConvertible(Exception):
    """The estimator cannot be compiled faithfully; serve it with scikit-learn."""


# --- the graph under construction ---------------------------------------------------------------


class _Graph:
    """ONNX nodes and constants with unique names; every value is float64 unless cast."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, dtype: Any = np.float64, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self._name(op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=out, domain=domain or None, **attrs)
        )
        return out

    def column(self, vector: str) -> str:
        """(n,) -> (n, 1)."""
        return self.op("Unsqueeze", vector, self.const([1], np.int64))

    def model(self, x: str, n_features: int, out: str) -> Any:
        from onnx import TensorProto, helper

        self.nodes.append(helper.make_node("Identity", [out], [OUTPUT], name=OUTPUT))
        graph = helper.make_graph(
            self.nodes,
            "potability",
            [helper.make_tensor_value_info(x, TensorProto.DOUBLE, [None, n_features])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None, 2])],
            self.initializers,
        )
        return helper.make_model(
            graph,
            producer_name="potability.serving.compiled_model",
            opset_imports=[helper.make_opsetid(d, v) for d, v in TARGET_OPSET.items()],
        )


def _binary(estimator: Any) -> None:
    if len(getattr(estimator, "classes_", ())) != 2:
        raise NotConvertible(f"{type(estimator).__name__} is not a fitted binary classifier")


# --- transformers: (n, d) -> (n, d') ------------------------------------------------------------


def _imputer(g: _Graph, imputer: Any, x: str) -> str:
    """``SimpleImputer``: ``Where(IsNaN(x), statistics_, x)``."""
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    if imputer.add_indicator or np.isnan(stats).any():
        raise NotConvertible("SimpleImputer with indicators or all-missing columns")
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise NotConvertible("SimpleImputer whose missing marker is not NaN")
    return g.op("Where", g.op("IsNaN", x), g.const(stats), x)


def _scaler(g: _Graph, scaler: Any, x: str) -> str:
    """``StandardScaler.transform``: ``x -= mean_; x /= scale_`` (scikit-learn's own order)."""
    if scaler.with_mean:
        x = g.op("Sub", x, g.const(scaler.mean_))
    if scaler.with_std:
        x = g.op("Div", x, g.const(scaler.scale_))
    return x


def _polynomial(g: _Graph, poly: Any, x: str) -> str:
    """``PolynomialFeatures`` up to degree 2: the columns of degree 1, then each product of two
    columns, in ``powers_`` order (one multiplication each, as scikit-learn computes them)."""
    powers = np.asarray(poly.powers_)
    degrees = powers.sum(axis=1)
    if degrees.min() < 1 or degrees.max() > 2 or np.any(np.diff(degrees) < 0):
        raise NotConvertible("PolynomialFeatures with a bias column or beyond degree 2")
    first = [int(np.flatnonzero(row)[0]) for row in powers]
    second = [int(np.flatnonzero(row)[-1]) for row in powers]  # == first for x_i ** 2
    linear = int((degrees == 1).sum())
    out = g.op("Gather", x, g.const(first[:linear], np.int64), axis=1)
    if linear == len(powers):
        return out
    products = g.op(
        "Mul",
        g.op("Gather", x, g.const(first[linear:], np.int64), axis=1),
        g.op("Gather", x, g.const(second[linear:], np.int64), axis=1),
    )
    return g.op("Concat", out, products, axis=1) if linear else products


TRANSFORMERS: dict[str, Callable[[_Graph, Any, str], str]] = {
    "SimpleImputer": _imputer,
    "StandardScaler": _scaler,
    "PolynomialFeatures": _polynomial,
}


# --- trees: onnxruntime finds the leaf, float64 values summed in scikit-learn's order ------------


@dataclass(frozen=True)
class _Tree:
    """One binary tree in array form (node i's children, split and leaf value)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    """float64 per node: what a row ending in that leaf adds."""


def _sklearn_tree(tree: Any) -> _Tree:
    """A fitted ``sklearn.tree._tree.Tree`` of a binary classifier: value = P(classes_[1])."""
    if tree.n_outputs != 1 or tree.value.shape[2] != 2:
        raise NotConvertible("tree with several outputs or more than two classes")
    # DecisionTreeClassifier.predict_proba returns tree_.value[leaf] (fractions since 1.4)
    is_leaf = tree.children_left < 0
    return _Tree(
        left=np.where(is_leaf, 0, tree.children_left),
        right=np.where(is_leaf, 0, tree.children_right),
        feature=np.where(is_leaf, 0, tree.feature),
        threshold=tree.threshold,
        missing_left=np.asarray(tree.missing_go_to_left, dtype=np.int64),
        is_leaf=is_leaf,
        value=tree.value[:, 0, 1].astype(np.float64),
    )


def _leaf_ids(g: _Graph, x: str, trees: list[_Tree]) -> str:
    """(n, T) int64: the global index (tree offset + node id) of each row's leaf in each tree."""
    nodes: dict[str, list[Any]] = {
        k: []
        for k in ("treeids", "nodeids", "featureids", "modes", "values", "true", "false", "missing")
    }
    targets: dict[str, list[Any]] = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
    for t, tree in enumerate(trees):
        n = len(tree.left)
        if n >= 2**24:
            raise NotConvertible("a tree too large for exact float32 leaf ids")
        ids = np.arange(n)
        nodes["treeids"] += [t] * n
        nodes["nodeids"] += ids.tolist()
        nodes["featureids"] += tree.feature.astype(np.int64).tolist()
        nodes["modes"] += ["LEAF" if leaf else "BRANCH_LEQ" for leaf in tree.is_leaf]
        nodes["values"].append(np.where(tree.is_leaf, 0.0, tree.threshold))
        nodes["true"] += tree.left.astype(np.int64).tolist()
        nodes["false"] += tree.right.astype(np.int64).tolist()
        nodes["missing"] += tree.missing_left.astype(np.int64).tolist()
        leaves = ids[tree.is_leaf]
        targets["treeids"] += [t] * len(leaves)
        targets["nodeids"] += leaves.tolist()
        targets["ids"] += [t] * len(leaves)
        targets["weights"] += leaves.astype(float).tolist()
    from onnx import numpy_helper

    found = g.op(
        "TreeEnsembleRegressor",
        x,
        domain="ai.onnx.ml",
        n_targets=len(trees),
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=nodes["treeids"],
        nodes_nodeids=nodes["nodeids"],
        nodes_featureids=nodes["featureids"],
        nodes_modes=nodes["modes"],
        nodes_values_as_tensor=numpy_helper.from_array(
            np.concatenate(nodes["values"]).astype(np.float64)
        ),
        nodes_truenodeids=nodes["true"],
        nodes_falsenodeids=nodes["false"],
        nodes_missing_value_tracks_true=nodes["missing"],
        target_treeids=targets["treeids"],
        target_nodeids=targets["nodeids"],
        target_ids=targets["ids"],
        target_weights=targets["weights"],
    )
    offsets = np.cumsum([0] + [len(tree.left) for tree in trees[:-1]])
    return g.op("Add", g.op("Cast", found, to=INT64), g.const(offsets[None, :], np.int64))  # int64


def _tree_sum(g: _Graph, x: str, trees: list[_Tree], start: float | None = None) -> str:
    """(n,) float64: ``start`` (if any) + leaf value of tree 1 + tree 2 + ..., left to right."""
    table = g.const(
        np.concatenate(
            [tree.value for tree in trees] + ([np.array([start])] if start is not None else [])
        )
    )
    ids = _leaf_ids(g, x, trees)
    if start is not None:  # a first column pointing at ``start``, the last entry of the table
        rows = g.op("Slice", g.op("Shape", ids), g.const([0], np.int64), g.const([1], np.int64))
        first = g.op(
            "Expand",
            g.const([[sum(len(t.left) for t in trees)]], np.int64),
            g.op("Concat", rows, g.const([1], np.int64), axis=0),
        )
        ids = g.op("Concat", first, ids, axis=1)
    values = g.op("Gather", table, ids)  # (n, columns)
    columns = len(trees) + (start is not None)
    if columns > 1:  # CumSum adds along the axis one after the other: scikit-learn's loop
        values = g.op("CumSum", values, g.const(1, np.int64))
    last = g.op("Gather", values, g.const(columns - 1, np.int64), axis=1)
    return last


def _as_float32(g: _Graph, x: str) -> str:
    """scikit-learn trees compare ``X`` cast to float32 with their float64 thresholds."""
    return g.op("Cast", g.op("Cast", x, to=FLOAT), to=DOUBLE)  # FLOAT, then DOUBLE


def _decision_tree(g: _Graph, tree: Any, x: str, response: str) -> str:
    _binary(tree)
    _needs(tree, response, PROBA)
    return _tree_sum(g, _as_float32(g, x), [_sklearn_tree(tree.tree_)])


def _forest(g: _Graph, forest: Any, x: str, response: str) -> str:
    """``ForestClassifier.predict_proba``: the trees' probabilities summed in order, / T."""
    _binary(forest)
    _needs(forest, response, PROBA)
    trees = [_sklearn_tree(e.tree_) for e in forest.estimators_]
    total = _tree_sum(g, _as_float32(g, x), trees)
    return g.op("Div", total, g.const(float(len(trees))))


def _hist_gradient_boosting(g: _Graph, model: Any, x: str, response: str) -> str:
    """Raw score = baseline + leaf values, iteration after iteration; P = expit(raw)."""
    _binary(model)
    if model.n_trees_per_iteration_ != 1:
        raise NotConvertible("HistGradientBoosting with several trees per iteration")
    if model.is_categorical_ is not None and np.any(model.is_categorical_):
        raise NotConvertible("HistGradientBoosting with categorical features")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise NotConvertible("HistGradientBoosting with categorical splits")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            _Tree(
                left=np.where(leaf, 0, nodes["left"]),
                right=np.where(leaf, 0, nodes["right"]),
                feature=np.where(leaf, 0, nodes["feature_idx"]),
                threshold=nodes["num_threshold"].astype(np.float64),
                missing_left=nodes["missing_go_to_left"].astype(np.int64),
                is_leaf=leaf,
                value=nodes["value"].astype(np.float64),
            )
        )
    raw = _tree_sum(g, x, trees, start=float(model._baseline_prediction[0, 0]))
    return raw if response == DECISION else g.op("Sigmoid", raw)


# --- linear and kernel models -------------------------------------------------------------------


def _needs(estimator: Any, response: str, *supported: str) -> None:
    if response not in supported:
        raise NotConvertible(f"{type(estimator).__name__}.{response} is not compiled")


def _logistic(g: _Graph, model: Any, x: str, response: str) -> str:
    """``decision_function = x @ coef_.T + intercept_``; binary ``predict_proba`` = expit."""
    _binary(model)
    score = g.op("Add", g.op("MatMul", x, g.const(model.coef_.T)), g.const(model.intercept_))
    score = g.op("Reshape", score, g.const([-1], np.int64))
    return score if response == DECISION else g.op("Sigmoid", score)


def _svc(g: _Graph, model: Any, x: str, response: str) -> str:
    """Binary ``SVC.decision_function``: ``K(x, support_vectors_) @ dual_coef_[0] + intercept_``."""
    _binary(model)
    _needs(model, response, DECISION)  # its predict_proba is libsvm's own Platt scaling
    if model.kernel not in ("rbf", "linear"):
        raise NotConvertible(f"SVC kernel {model.kernel!r}")
    vectors = np.asarray(model.support_vectors_, dtype=np.float64)
    dot = g.op("MatMul", x, g.const(vectors.T))  # (n, m)
    if model.kernel == "rbf":
        x_sq = g.op("ReduceSum", g.op("Mul", x, x), g.const([1], np.int64), keepdims=1)
        distance = g.op(
            "Sub",
            g.op("Add", x_sq, g.const((vectors**2).sum(axis=1)[None, :])),
            g.op("Mul", dot, g.const(2.0)),
        )
        kernel = g.op("Exp", g.op("Mul", distance, g.const(-float(model._gamma))))
    else:
        kernel = dot
    score = g.op(
        "Add",
        g.op("MatMul", kernel, g.const(model.dual_coef_[0][:, None])),
        g.const(model.intercept_),
    )
    return g.op("Reshape", score, g.const([-1], np.int64))


# --- composites ---------------------------------------------------------------------------------


def _pipeline(g: _Graph, pipeline: Any, x: str, response: str) -> str:
    for name, step in pipeline.steps[:-1]:
        if step is None or step == "passthrough":
            continue
        convert = TRANSFORMERS.get(type(step).__name__)
        if convert is None or type(step).__module__.split(".")[0] != "sklearn":
            raise NotConvertible(f"pipeline step {name!r}: {type(step).__name__}")
        x = convert(g, step, x)
    return _score(g, pipeline.steps[-1][1], x, response)


def _sigmoid_map(g: _Graph, calibrator: Any, score: str) -> str:
    """``_SigmoidCalibration.predict``: ``expit(-(a_ * T + b_))``."""
    affine = g.op(
        "Add", g.op("Mul", score, g.const(float(calibrator.a_))), g.const(float(calibrator.b_))
    )
    return g.op("Sigmoid", g.op("Neg", affine))


def _isotonic_map(g: _Graph, calibrator: Any, score: str) -> str:
    """``IsotonicRegression.predict`` (out_of_bounds="clip"): clip, then ``np.interp``.

    ``np.interp`` (numpy's ``arr_interp``): j with ``xp[j] <= s < xp[j+1]``; ``fp[j]`` if
    ``s == xp[j]`` (this covers the last threshold), else ``slope[j] * (s - xp[j]) + fp[j]``
    with ``slope[j] = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])``.
    """
    if calibrator.out_of_bounds != "clip":
        raise NotConvertible(f"isotonic calibration with out_of_bounds={calibrator.out_of_bounds}")
    xp = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
    fp = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
    if len(xp) == 1:  # scikit-learn: a constant prediction
        return g.op("Expand", g.const(fp), g.op("Shape", score))
    if np.any(np.diff(xp) <= 0):
        raise NotConvertible("isotonic thresholds not strictly increasing")
    s = g.op("Clip", score, g.const(float(calibrator.X_min_)), g.const(float(calibrator.X_max_)))
    above = g.op("GreaterOrEqual", g.column(s), g.const(xp[None, 1:]))  # (n, m-1)
    j = g.op("ReduceSum", g.op("Cast", above, to=INT64), g.const([1], np.int64), keepdims=0)
    slopes = np.append((fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1]), 0.0)
    x_j, f_j = g.op("Gather", g.const(xp), j), g.op("Gather", g.const(fp), j)
    between = g.op("Add", g.op("Mul", g.op("Gather", g.const(slopes), j), g.op("Sub", s, x_j)), f_j)
    return g.op("Where", g.op("Equal", s, x_j), f_j, between)


def _calibrated(g: _Graph, model: Any, x: str, response: str) -> str:
    """``CalibratedClassifierCV.predict_proba`` for two classes: the mean over its calibrated
    classifiers of ``calibrator(score of the fitted estimator)``, each with scikit-learn's
    ``(1, 1 + 1e-5] -> 1`` correction."""
    _binary(model)
    _needs(model, response, PROBA)
    total = None
    for calibrated in model.calibrated_classifiers_:
        if calibrated.method not in ("sigmoid", "isotonic") or len(calibrated.calibrators) != 1:
            raise NotConvertible(f"calibration method {calibrated.method!r}")
        score = _score(g, calibrated.estimator, x, calibrated_response(calibrated.estimator))
        calibrator = calibrated.calibrators[0]
        p = (_sigmoid_map if calibrated.method == "sigmoid" else _isotonic_map)(
            g, calibrator, score
        )
        over = g.op(
            "And", g.op("Greater", p, g.const(1.0)), g.op("LessOrEqual", p, g.const(1.0 + 1e-5))
        )
        p = g.op("Where", over, g.const(1.0), p)
        total = p if total is None else g.op("Add", total, p)
    assert total is not None
    return g.op("Div", total, g.const(float(len(model.calibrated_classifiers_))))


def _oof_calibrated(g: _Graph, model: Any, x: str, response: str) -> str:
    """``OOFCalibratedClassifier.predict_proba``: the project's calibrator on the fitted
    estimator's raw score - Platt as ``LogisticRegression.predict_proba`` of one feature,
    ``expit(s * coef + intercept)``, or the isotonic map (``potability.model.fit_calibrator``)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    _binary(model)
    _needs(model, response, PROBA)
    if list(model.classes_).index(1) != 1:
        raise NotConvertible("calibrated classifier whose potable class is not classes_[1]")
    score = _score(g, model.estimator_, x, model.response_)
    calibrator = model.calibrator_
    if type(calibrator) is LogisticRegression:
        _binary(calibrator)
        if list(calibrator.classes_) != [0, 1] or calibrator.coef_.shape != (1, 1):
            raise NotConvertible("Platt calibrator that is not one score -> P(1)")
        affine = g.op(
            "Add",
            g.op("Mul", score, g.const(float(calibrator.coef_[0, 0]))),
            g.const(float(calibrator.intercept_[0])),
        )
        return g.op("Sigmoid", affine)
    if type(calibrator) is IsotonicRegression:
        return _isotonic_map(g, calibrator, score)
    raise NotConvertible(f"calibrator {type(calibrator).__name__}")


def _vote(g: _Graph, vote: Any, x: str, response: str) -> str:
    """Soft ``VotingClassifier.predict_proba``: ``np.average`` of the members' probabilities
    (unweighted: their sum in member order, divided by their number)."""
    _binary(vote)
    _needs(vote, response, PROBA)
    if vote.voting != "soft" or vote.weights is not None:
        raise NotConvertible("VotingClassifier that is not an unweighted soft vote")
    total = None
    for member in vote.estimators_:
        p = _score(g, member, x, PROBA)
        total = p if total is None else g.op("Add", total, p)
    assert total is not None
    return g.op("Div", total, g.const(float(len(vote.estimators_))))


SCORERS: dict[str, Callable[[_Graph, Any, str, str], str]] = {
    "Pipeline": _pipeline,
    "CalibratedClassifierCV": _calibrated,
    "OOFCalibratedClassifier": _oof_calibrated,
    "VotingClassifier": _vote,
    "LogisticRegression": _logistic,
    "SVC": _svc,
    "DecisionTreeClassifier": _decision_tree,
    "ExtraTreeClassifier": _decision_tree,
    "RandomForestClassifier": _forest,
    "ExtraTreesClassifier": _forest,
    "HistGradientBoostingClassifier": _hist_gradient_boosting,
}
"""scikit-learn classes and our own calibrated classifier (matched by exact type, not
subclass) and how each is compiled."""

OWN = (OOFCalibratedClassifier,)
"""Our own classes in :data:`SCORERS`."""


def _score(g: _Graph, estimator: Any, x: str, response: str) -> str:
    """(n,) float64: ``estimator``'s P(classes_[1]) (``predict_proba``) or its binary
    ``decision_function``, as a graph value."""
    convert = SCORERS.get(type(estimator).__name__)
    ours = type(estimator) in OWN
    if convert is None or not (ours or type(estimator).__module__.split(".")[0] == "sklearn"):
        raise NotConvertible(f"{type(estimator).__name__} has no compiled form")
    return convert(g, estimator, x, response)


def to_onnx(estimator: Any, n_features: int) -> bytes:
    """The serialized ONNX graph of ``estimator``'s probability model.

    Input ``X`` float64 [n, n_features]; output ``probabilities`` float64 [n, 2], the
    columns in ``classes_`` order (``1 - P``, ``P``).
    """
    model = probability_model(estimator)
    _binary(model)
    g = _Graph()
    p = _score(g, model, "X", PROBA)
    complement = g.op("Sub", g.const(1.0), p)
    out = g.op("Concat", g.column(complement), g.column(p), axis=1)
    return g.model("X", n_features, out).SerializeToString()


def max_difference(estimator: Any, compiled: CompiledModel, x: np.ndarray) -> float:
    """Largest |P_onnx - P_sklearn| of P(potable) over the rows of ``x``."""
    column = list(estimator.classes_).index(1)
    reference = probability_model(estimator).predict_proba(x)[:, column]
    onnx = np.concatenate(
        [
            compiled.potable_probability(x[i : i + CHECK_BATCH])
            for i in range(0, len(x), CHECK_BATCH)
        ]
    )
    return float(np.max(np.abs(onnx - reference)))


@dataclass(frozen=True)
class Compiled:
    """A verified compiled form and what its check found."""

    onnx: bytes
    report: dict[str, Any]


def compile_estimator(estimator: Any, x_check: Any) -> Compiled:
    """Convert and verify on ``x_check`` (raises :class:`NotConvertible` beyond tolerance)."""
    import onnx
    import onnxruntime
    import sklearn

    x = np.asarray(x_check, dtype=np.float64)
    onnx_bytes = to_onnx(estimator, x.shape[1])
    try:
        compiled = CompiledModel(onnx_bytes, estimator.classes_)
        difference = max_difference(estimator, compiled, x)
    except Exception as exc:  # onnxruntime refuses a graph: InvalidGraph, Fail, NotImplemented
        raise NotConvertible(f"onnxruntime cannot run the graph: {exc}") from exc
    if not difference <= TOLERANCE:
        raise NotConvertible(
            f"ONNX probabilities differ from scikit-learn's by {difference:.3g} "
            f"(> {TOLERANCE:g}) on the check rows"
        )
    return Compiled(
        onnx_bytes,
        {
            "format": "onnx",
            "file": ONNX_FILE,
            "input": "X float64 [n, 9] in FEATURE_NAMES order",
            "converter": "potability.serving.compiled_model",
            "max_abs_difference": difference,
            "rows_checked": int(x.shape[0]),
            "tolerance": TOLERANCE,
            "scikit-learn": sklearn.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "target_opset": TARGET_OPSET,
            # what serving needs of the estimator, so the model server can do without
            # scikit-learn (potability.serving.onnx_scoring.served_facts)
            "threshold": decision_threshold(estimator),
            "classes": [int(c) for c in estimator.classes_],
            "feature_names": [
                str(c) for c in getattr(estimator, "feature_names_in_", FEATURE_NAMES)
            ],
        },
    )


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
