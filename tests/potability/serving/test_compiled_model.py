"""Every model shape training serves compiles to ONNX and scores like scikit-learn.

The shapes are built by ``training.modeling`` itself (its families, its quick grid's
parameters, its ``served_model`` calibration wrapper and ``soft_vote``), so a family added there
is checked here automatically - and fails, naming its class, if the converter lacks it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from potability.features import FEATURE_NAMES, TARGET
from potability.model import served_model
from potability.seed import load_dataset
from potability.serving import compiled_model
from training import modeling

CONFIG = modeling.TrainingConfig(cv_folds=2, seed=0)
"""Two folds: the calibration maps are fitted the same way, at half the fitting cost."""


VARIANTS = {"logistic_regression_degree_2": ("logistic_regression", {"poly__degree": 2})}
"""Structure the quick grid leaves out but the daily grid searches (squared terms)."""


def _family(family: str) -> Pipeline:
    """The family's pipeline with its quick-grid parameters (few trees: a fast test)."""
    family, extra = VARIANTS.get(family, (family, {}))
    params = {k: v[0] for k, v in modeling.grid("quick")[family].items()} | extra
    return modeling.make_pipeline(family, seed=0).set_params(**params)


VOTERS = [f for f in modeling.FAMILIES if hasattr(_family(f), "predict_proba")]
"""Families with probabilities of their own: any of them may be in the soft vote."""

SHAPES = [
    (f, m)
    for f in (*modeling.FAMILIES, *VARIANTS, modeling.ENSEMBLE)
    for m in modeling.CALIBRATION_METHODS
]


def _unfitted(family: str) -> object:
    if family == modeling.ENSEMBLE:
        return modeling.soft_vote([(f, _family(f)) for f in VOTERS])
    return _family(family)


def _served(family: str, method: str, x: np.ndarray, y: np.ndarray) -> object:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):  # as modeling fits (2 shared cores)
        return served_model(_unfitted(family), method, CONFIG.folds(), 0.4137).fit(x, y)


def _save(model: object, path: object) -> None:
    """As training logs it (skops), minus MLflow's ~20 s requirements inference."""
    import mlflow.sklearn

    from potability.model import sklearn_save_kwargs

    mlflow.sklearn.save_model(
        model, str(path), pip_requirements=["scikit-learn"], **sklearn_save_kwargs(model)
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    frame = load_dataset()
    return frame[list(FEATURE_NAMES)].to_numpy(float), frame[TARGET].to_numpy()


@pytest.fixture(scope="module")
def check_rows(data: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The whole data set, and 600 of its rows again with a reading missing in every column
    (sensors may send null for any field: imputers and boosting's missing-value branches)."""
    x, _ = data
    rng = np.random.default_rng(0)
    gaps = x[rng.choice(len(x), 600, replace=False)].copy()
    gaps[np.arange(600), np.arange(600) % x.shape[1]] = np.nan
    assert np.isnan(x).any(axis=0).sum() < x.shape[1]  # some columns never miss in training
    return np.vstack([x, gaps])


@pytest.fixture(scope="module")
def served(data):
    """``served(family, method)``: the fitted served model, each fitted once per module, on
    every 13th row (252 rows; the tests compare on all of them): an SVM's fit grows with the
    square of the rows, and under 255 distinct values a column histogram boosting bins the
    values as they are instead of computing weighted percentiles (with class weights)."""
    x, y = data[0][::13], data[1][::13]
    cache: dict[tuple[str, str], object] = {}

    def get(family: str, method: str) -> object:
        if (family, method) not in cache:
            cache[family, method] = _served(family, method, x, y)
        return cache[family, method]

    return get


def _onnx_proba(compiled: compiled_model.Compiled, classes: object, x: np.ndarray) -> np.ndarray:
    session = compiled_model.CompiledModel(compiled.onnx, classes)
    return np.concatenate(
        [session.potable_probability(x[i : i + 1000]) for i in range(0, len(x), 1000)]
    )


@pytest.mark.parametrize(("family", "method"), SHAPES, ids=[f"{f}-{m}" for f, m in SHAPES])
def test_every_served_shape_compiles_and_equals_sklearn_on_the_whole_data_set(
    family, method, served, check_rows
):
    model = served(family, method)
    compiled = compiled_model.compile_estimator(model, check_rows)
    reference = model.predict_proba(check_rows)[:, 1]
    onnx_proba = _onnx_proba(compiled, model.classes_, check_rows)
    assert onnx_proba.shape == reference.shape == (len(check_rows),)
    assert np.max(np.abs(onnx_proba - reference)) <= 1e-6
    assert compiled.report["rows_checked"] == len(check_rows)
    assert compiled.report["max_abs_difference"] <= 1e-6
    # the threshold, applied in Python by the model server, gives scikit-learn's decisions
    threshold = model.threshold
    flips = np.flatnonzero((onnx_proba >= threshold).astype(int) != model.predict(check_rows))
    assert all(abs(reference[i] - threshold) <= 1e-6 for i in flips)


def test_shapes_trained_before_calibration_became_the_rule_compile_too(data):
    """A tuned threshold around a pipeline, calibration with ``ensemble=True`` (the mean
    of one calibrated copy per fold), and ``CalibratedClassifierCV(ensemble=False)`` inside
    the fixed threshold (the served shape before ``OOFCalibratedClassifier``)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    x, y = data
    fit_x, fit_y = x[::13], y[::13]  # fitted on 252 rows, compared on all (as `served`)
    tuned = TunedThresholdClassifierCV(
        CalibratedClassifierCV(
            _family("logistic_regression"), method="isotonic", cv=3, ensemble=True
        ),
        cv=2,
        random_state=0,
    ).fit(fit_x, fit_y)
    # What training served before OOFCalibratedClassifier: champions in the registry still are.
    former = [
        FixedThresholdClassifier(
            CalibratedClassifierCV(
                _family("svm"), method=method, cv=CONFIG.folds(), ensemble=False
            ),
            threshold=0.4,
            response_method="predict_proba",
        ).fit(fit_x, fit_y)
        for method in ("sigmoid", "isotonic")
    ]
    for model in (tuned, *former):
        compiled = compiled_model.compile_estimator(model, x)
        assert compiled.report["max_abs_difference"] <= 1e-6
        assert (
            np.max(np.abs(_onnx_proba(compiled, model.classes_, x) - model.predict_proba(x)[:, 1]))
            <= 1e-6
        )


@pytest.fixture(scope="module")
def knn(data):
    """A shape the converter does not know (no family trains it): it must fall back."""
    x, y = data
    pipe = modeling.make_pipeline("svm", seed=0)
    pipe.steps[-1] = ("clf", KNeighborsClassifier(15))
    return served_model(pipe, "sigmoid", CONFIG.folds(), 0.5).fit(x, y)


def test_an_unknown_estimator_is_refused_naming_it(data, knn):
    with pytest.raises(compiled_model.NotConvertible, match="KNeighborsClassifier"):
        compiled_model.compile_estimator(knn, data[0])


def test_a_graph_that_differs_from_sklearn_is_refused(data, served, monkeypatch):
    """The parity check itself: a graph of another model (sigmoid instead of isotonic)."""
    x, _ = data
    model = served("logistic_regression", "isotonic")
    other = served("logistic_regression", "sigmoid")
    onnx_of_other = compiled_model.to_onnx(other, x.shape[1])
    monkeypatch.setattr(compiled_model, "to_onnx", lambda *_: onnx_of_other)
    with pytest.raises(compiled_model.NotConvertible, match="differ"):
        compiled_model.compile_estimator(model, x)


def test_model_server_falls_back_to_sklearn_with_a_warning(tmp_path, data, knn, caplog):
    from potability.config import ServingSettings
    from potability.serving.model_server import load_model, predict

    x, _ = data
    model = knn
    path = tmp_path / "knn"
    _save(model, path)
    report = compiled_model.attach("unused", model, x, client=object())
    assert report["format"] == "none" and "KNeighborsClassifier" in report["reason"]
    with caplog.at_level(logging.WARNING, logger="potability.serving.model_server"):
        loaded = load_model(ServingSettings(model_uri=str(path), model_version="9"))
    assert loaded.runtime == "scikit-learn"
    assert "scoring with scikit-learn" in caplog.text
    answers = predict(loaded, x[:50])
    assert [a["probability"] for a in answers] == pytest.approx(model.predict_proba(x[:50])[:, 1])


def test_model_server_scores_with_the_compiled_form(tmp_path, data, served, check_rows, caplog):
    from potability.config import ServingSettings
    from potability.serving.model_server import load_model, predict

    x, _ = data
    model = served("hist_gradient_boosting", "isotonic")
    path = tmp_path / "hgb"
    _save(model, path)
    compiled_model.write(compiled_model.compile_estimator(model, x), path / "compiled")
    with caplog.at_level(logging.INFO, logger="potability.serving.model_server"):
        loaded = load_model(ServingSettings(model_uri=str(path), model_version="3"))
    assert loaded.runtime == "onnx"
    assert "with runtime onnx" in caplog.text
    rows = check_rows[-1000:]  # the server's largest request, with missing readings
    answers = predict(loaded, rows)
    assert (
        np.max(
            np.abs(np.array([a["probability"] for a in answers]) - model.predict_proba(rows)[:, 1])
        )
        <= 1e-6
    )
    decided = np.array([a["potable"] for a in answers])
    assert (decided == model.predict(rows)).mean() == 1.0


def _serve_in_own_process(model_uri: str, tracking_uri: str = "") -> list[str]:
    """load_model and one prediction in a fresh interpreter, as the model server runs: runtime,
    estimator is None, threshold, P(potable) of an all-missing reading, and whether
    scikit-learn and MLflow were imported."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from potability.config import ServingSettings; "
        "from potability.serving.model_server import load_model, predict; import numpy as np; "
        f"m = load_model(ServingSettings(model_uri={model_uri!r}, model_version='1', "
        f"tracking_uri={tracking_uri!r})); "
        "p = predict(m, np.full((1, 9), np.nan))[0]['probability']; "
        "print(m.runtime, m.estimator is None, repr(m.threshold), repr(p), "
        "'sklearn' in sys.modules, 'mlflow' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split(), out.stderr
    return out.stdout.split()


@pytest.mark.integration  # a model server's import path, in a process of its own
def test_a_compiled_model_is_served_without_scikit_learn(tmp_path, data, served):
    """Issue 34: the compile report carries the threshold, classes and feature names, so the
    model server scores with onnxruntime alone and never imports scikit-learn (~130 MB less
    resident) nor MLflow (~125 MB). A report written before it carried them: the estimator
    is loaded as before."""
    import json

    from potability.config import ServingSettings
    from potability.model import decision_threshold
    from potability.serving.model_server import load_model

    x, _ = data
    model = served("extra_trees", "sigmoid")
    path = tmp_path / "et"
    _save(model, path)
    compiled_model.write(compiled_model.compile_estimator(model, x), path / "compiled")
    runtime, no_estimator, threshold, probability, *imported = _serve_in_own_process(str(path))
    assert (runtime, no_estimator, imported) == ("onnx", "True", ["False", "False"])
    assert float(threshold) == decision_threshold(model)
    expected = model.predict_proba(np.full((1, 9), np.nan))[0, 1]
    assert abs(float(probability) - expected) <= 1e-6
    report_path = path / "compiled" / compiled_model.REPORT_FILE
    report = json.loads(report_path.read_text())
    del report["threshold"]
    report_path.write_text(json.dumps(report))
    older = load_model(ServingSettings(model_uri=str(path), model_version="1"))
    assert older.estimator is not None and older.runtime == "onnx"


@pytest.mark.integration  # a model server's import path, against the tracking server
def test_a_model_named_by_uri_is_downloaded_without_mlflow_in_the_server(
    tmp_path, data, served, mlflow_uri
) -> None:
    """Issue 34: a model named by an MLflow URI (``runs:/``, ``models:/``, ``gs://`` on
    Vertex) is downloaded by MLflow's CLI in a child process (model_server.fetch_model), so
    the server serving its compiled form imports neither MLflow nor scikit-learn; a URI that
    names nothing is a clear error."""
    import mlflow

    from potability.config import ServingSettings
    from potability.serving.model_server import fetch_model, load_model

    x, _ = data
    model = served("extra_trees", "sigmoid")
    path = tmp_path / "et"
    _save(model, path)
    compiled_model.write(compiled_model.compile_estimator(model, x), path / "compiled")
    client = mlflow.MlflowClient(mlflow_uri)
    experiment = client.create_experiment(f"fetch-{tmp_path.name}")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(path), "model")
    uri = f"runs:/{run.info.run_id}/model"
    runtime, no_estimator, _, probability, *imported = _serve_in_own_process(uri, mlflow_uri)
    assert (runtime, no_estimator, imported) == ("onnx", "True", ["False", "False"])
    expected = model.predict_proba(np.full((1, 9), np.nan))[0, 1]
    assert abs(float(probability) - expected) <= 1e-6
    assert (Path(fetch_model(uri, mlflow_uri)) / "compiled" / "model.onnx").is_file()
    with pytest.raises(RuntimeError, match="could not download the model runs:/"):
        load_model(
            ServingSettings(model_uri=f"runs:/{run.info.run_id}/nothing", tracking_uri=mlflow_uri)
        )
