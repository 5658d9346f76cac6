"""What a candidate costs to keep and to serve: bytes of its served artifact, scoring latency.

Both become MLflow metrics of every candidate (:func:`training.candidates.log_candidate`). The
default grid bounds the forests at 256 leaves a tree (the ``lean`` grid at 128, with fewer
trees) and candidates are stored deflated (:func:`save_model`), so every candidate a grid can
produce meets :data:`MAX_MODEL_BYTES` and a run :data:`MAX_RUN_BYTES` (issue 34: with the
unbounded forests and uncompressed archives a daily run stored 247 MB of models); checked on
the grids' heaviest points by tests/training/test_footprint.py.
"""

from __future__ import annotations

import statistics
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MAX_MODEL_BYTES = 20_000_000
"""Budget of one candidate's served artifact (the skops file of its MLflow model). The soft
vote holds copies of its three members, so the grid's forests stay well under it - a daily
run's seven candidates then store under :data:`MAX_RUN_BYTES` together."""
MAX_RUN_BYTES = 50_000_000
"""Budget of all candidates' models of one daily run (issue 34's target)."""
TIMING_REPEATS = 30


COMPRESSION = zipfile.ZIP_DEFLATED
"""How a candidate's skops archive is stored (:func:`save_model`). skops writes each fitted
array as an ``.npy`` member of a zip archive, stored uncompressed unless told (``skops.io.dump``'s
``compression``, default ``ZIP_STORED``, since skops 0.7: its API reference); a forest's node
arrays deflate 4-5x (200 random-forest trees of at most 256 leaves: 12.7 -> 3.0 MB; 300 extra
trees: 19.1 -> 4.0 MB), and ``skops.io.load`` reads either form."""


def model_bytes(model: Any) -> int:
    """Bytes of ``model`` serialised as the pipeline stores it (skops, deflated: the file
    :func:`save_model` writes)."""
    import skops.io

    return len(skops.io.dumps(model, compression=COMPRESSION))


def save_model(sk_model: Any, path: str, mlflow_model: Any = None, **kwargs: Any) -> int:
    """``mlflow.sklearn.save_model``, then its skops archive written again deflated; returns
    the bytes of the archive stored (:func:`model_bytes` without serialising again).

    The flavor :func:`training.candidates.log_candidate` hands to ``mlflow.models.Model.log``
    (which calls a flavor's ``save_model(path=, mlflow_model=, **kwargs)``: what
    ``mlflow.sklearn.log_model`` does with ``mlflow.sklearn``): MLflow's skops writer takes no
    compression (``skops.io.dump(sk_model, output_path)`` in mlflow/sklearn/__init__.py), so
    the archive it wrote is replaced, under the same name, by skops' own deflated one. The
    MLmodel, signature, example and requirements are MLflow's, unchanged; the model loads with
    ``mlflow.sklearn.load_model`` as before."""
    import mlflow.sklearn
    import skops.io
    from mlflow.models import Model

    if mlflow_model is None:  # called directly, not by Model.log
        mlflow_model = Model()
    mlflow.sklearn.save_model(sk_model, path, mlflow_model=mlflow_model, **kwargs)
    archive = Path(path) / mlflow_model.flavors["sklearn"]["pickled_model"]
    if archive.suffix == ".skops":
        skops.io.dump(sk_model, archive, compression=COMPRESSION)
    return archive.stat().st_size


class StoredModel:
    """The flavor :func:`training.candidates.log_candidate` hands to ``Model.log``: saves as
    :func:`save_model` does and keeps the stored archive's size, the candidate's
    ``model_bytes`` metric. Read from the file written, the size is exactly what the store
    holds, and the model is not serialised a third time to measure it (a daily run's seven
    candidates: 2.9 s of the train step's 31 s, profiled on the quick grid)."""

    def __init__(self) -> None:
        self.archive_bytes = 0

    def save_model(self, sk_model: Any, path: str, mlflow_model: Any = None, **kwargs: Any) -> None:
        self.archive_bytes = save_model(sk_model, path, mlflow_model, **kwargs)


def drop_duplicates(model: Any) -> Any:
    """``model`` without the second copy of a soft vote's members: a fitted
    ``VotingClassifier`` keeps each member in ``estimators_`` *and* in ``named_estimators_``,
    and skops stores both (no shared references: the vote of two 50-tree forests was 16.6 MB,
    8.4 MB without the copy). Nothing reads ``named_estimators_`` when scoring or converting;
    predictions are unchanged (tests/training/test_footprint.py). Returns ``model``."""
    from sklearn.base import BaseEstimator
    from sklearn.ensemble import VotingClassifier

    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, VotingClassifier) and hasattr(obj, "estimators_"):
            obj.__dict__.pop("named_estimators_", None)
        if isinstance(obj, BaseEstimator):
            for name, value in vars(obj).items():
                if name.endswith("_") or name in ("steps",):
                    visit(value)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)

    visit(model)
    return model


def scoring_ms(model: Any, rows: np.ndarray, repeats: int = TIMING_REPEATS) -> float:
    """Median milliseconds of ``predict_proba`` on ``rows`` (scikit-learn, one thread).

    The median of ``repeats`` calls after one warm-up call: robust to a shared machine's
    interruptions. It is scikit-learn's cost; the model server scores the compiled ONNX form
    when it has one, faster but in the same order between candidates (more and deeper trees
    cost more in both).
    """
    model.predict_proba(rows)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_proba(rows)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def footprint(model: Any, x: Any) -> dict[str, float]:
    """The scoring times logged per candidate: ``scoring_ms_1`` (one reading) and
    ``scoring_ms_100`` (a batch of 100 readings), rows taken from ``x`` (the training rows).
    Its size, ``model_bytes``, is logged as the model is stored (:class:`StoredModel`)."""
    matrix = np.asarray(x, dtype=float)
    batch = np.resize(matrix, (100, matrix.shape[1]))
    return {
        "scoring_ms_1": scoring_ms(model, _frame_like(x, batch[:1])),
        "scoring_ms_100": scoring_ms(model, _frame_like(x, batch)),
    }


def _frame_like(x: Any, rows: np.ndarray) -> Any:
    """``rows`` with ``x``'s columns when ``x`` is a DataFrame (the model was fitted on names)."""
    columns = getattr(x, "columns", None)
    if columns is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)
