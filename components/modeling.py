"""The four model families, their named grids and the metric they are tuned for.

Plain scikit-learn, no I/O: the train component and the benchmark build candidates from here.

Every family is one :class:`~sklearn.pipeline.Pipeline` (imputation -> scaling -> classifier),
so imputation and scaling are fitted inside each cross-validation fold and never see the
validation rows. Class imbalance (39% potable) is handled by class weights. The decision
threshold is tuned by :class:`~sklearn.model_selection.TunedThresholdClassifierCV` on the
training part only, maximising precision subject to a recall floor (plus a safety margin, so
that held-out recall - a noisy estimate on ~650 rows - stays above the floor).

The saved estimator's own ``predict`` applies the tuned threshold to ``predict_proba[:, 1]``;
the model server relies on that (it reads ``best_threshold_``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, precision_recall_curve
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

FAMILIES: tuple[str, ...] = ("random_forest", "decision_tree", "svm", "logistic_regression")
"""The four families the design names, in the order they are trained and reported."""

DEFAULT_RECALL_MARGIN = 0.02
"""Tuning aims at ``recall_floor + margin`` on the training folds, so held-out recall stays
at or above the floor despite the noise of a ~650-row test split."""


# --- the metric -------------------------------------------------------------------------------

def precision_at_recall(y_true: Any, y_pred: Any, recall_floor: float) -> float:
    """Precision of hard predictions if their recall reaches ``recall_floor``, else 0.

    Args:
        y_true: true labels (1 = potable).
        y_pred: predicted labels at some threshold.
        recall_floor: the minimum recall for the precision to count.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    positives = int((y_true == 1).sum())
    predicted = int((y_pred == 1).sum())
    if positives == 0 or predicted == 0:
        return 0.0
    true_pos = int(((y_true == 1) & (y_pred == 1)).sum())
    if true_pos / positives < recall_floor:
        return 0.0
    return true_pos / predicted


def best_precision_at_recall(y_true: Any, proba: Any, recall_floor: float) -> float:
    """The best precision any threshold reaches with recall >= ``recall_floor`` (threshold-free).

    Used to rank hyper-parameters in the grid search: it scores the ranking quality where
    we operate (the high-precision end), before the threshold itself is tuned.

    Args:
        y_true: true labels.
        proba: P(potable) per row.
        recall_floor: the minimum recall.
    """
    precision, recall, _ = precision_recall_curve(y_true, proba)
    eligible = recall >= recall_floor
    return float(precision[eligible].max()) if eligible.any() else 0.0


def _proba_scorer(recall_floor: float) -> Callable[..., float]:
    """A grid-search scorer ``(estimator, X, y) -> best precision at recall >= floor``."""

    def scorer(estimator: BaseEstimator, x: Any, y: Any) -> float:
        proba = estimator.predict_proba(x)[:, list(estimator.classes_).index(1)]
        return best_precision_at_recall(y, proba, recall_floor)

    return scorer


def threshold_scorer(recall_floor: float) -> Any:
    """The scorer ``TunedThresholdClassifierCV`` maximises over thresholds."""
    return make_scorer(precision_at_recall, recall_floor=recall_floor)


# --- families and grids -----------------------------------------------------------------------

def make_pipeline(family: str, seed: int) -> Pipeline:
    """An unfitted imputation -> scaling -> classifier pipeline of ``family``.

    Args:
        family: one of :data:`FAMILIES`.
        seed: random state of the stochastic estimators (recorded with the run).
    """
    imputer = SimpleImputer(strategy="median")
    scaler = StandardScaler()
    if family == "random_forest":
        clf: BaseEstimator = RandomForestClassifier(
            n_estimators=200, class_weight="balanced_subsample", random_state=seed, n_jobs=1)
        return Pipeline([("impute", imputer), ("scale", scaler), ("clf", clf)])
    if family == "decision_tree":
        clf = DecisionTreeClassifier(class_weight="balanced", random_state=seed)
        return Pipeline([("impute", imputer), ("scale", scaler), ("clf", clf)])
    if family == "svm":
        # Platt-calibrated probabilities (what the threshold is tuned on and the server returns).
        clf = CalibratedClassifierCV(SVC(kernel="rbf", class_weight="balanced"),
                                     method="sigmoid", cv=3, ensemble=False)
        return Pipeline([("impute", imputer), ("scale", scaler), ("clf", clf)])
    if family == "logistic_regression":
        # Potable samples differ from the rest mostly in spread, not in mean: squared terms
        # (degree 2) let a linear model see that.
        clf = LogisticRegression(class_weight="balanced", max_iter=2000)
        return Pipeline([("impute", imputer), ("scale", scaler),
                         ("poly", PolynomialFeatures(degree=2, include_bias=False)),
                         ("post_scale", StandardScaler()), ("clf", clf)])
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    # The daily grid: sized so the whole local pipeline stays under 3 minutes on 2 cores.
    "default": {
        "random_forest": {
            "clf__n_estimators": [200],
            "clf__min_samples_leaf": [1, 4],
            "clf__max_features": ["sqrt", 0.5],
        },
        "decision_tree": {
            "clf__max_depth": [4, 6, 10],
            "clf__min_samples_leaf": [10, 40],
        },
        "svm": {
            "clf__estimator__C": [0.5, 1.0, 3.0],
            "clf__estimator__gamma": ["scale", 0.05],
        },
        "logistic_regression": {
            "poly__degree": [1, 2],
            "clf__C": [0.1, 1.0],
        },
    },
    # For tests: one small candidate per family, a few seconds in all.
    "quick": {
        "random_forest": {"clf__n_estimators": [40], "clf__max_depth": [8]},
        "decision_tree": {"clf__max_depth": [4]},
        "svm": {"clf__estimator__C": [1.0]},
        "logistic_regression": {"poly__degree": [1], "clf__C": [1.0]},
    },
}


def grid(name: str) -> Mapping[str, Mapping[str, list[Any]]]:
    """The named grid (family -> parameter grid); a clear error for an unknown name."""
    try:
        return GRIDS[name]
    except KeyError:
        raise ValueError(f"unknown grid {name!r}; expected one of {sorted(GRIDS)}") from None


@dataclass(frozen=True)
class TrainingConfig:
    """What a training run depends on besides the data (every field is logged)."""

    recall_floor: float = 0.2
    recall_margin: float = DEFAULT_RECALL_MARGIN
    cv_folds: int = 5
    seed: int = 42
    n_jobs: int = 2


@dataclass
class FittedCandidate:
    """One family's result on the training part."""

    family: str
    model: TunedThresholdClassifierCV
    best_params: dict[str, Any]
    cv_score: float
    """Mean CV score of the chosen parameters (best precision at recall >= floor + margin)."""
    cv_results: dict[str, Any] = field(repr=False)
    threshold: float = 0.5


def fit_family(
    family: str, param_grid: Mapping[str, list[Any]], x: Any, y: Any, config: TrainingConfig,
) -> FittedCandidate:
    """Grid-search one family, then tune its decision threshold, all on the training part.

    The grid search ranks parameters by the best precision reachable at recall >= floor +
    margin (stratified k-fold); the best pipeline is then wrapped in a
    ``TunedThresholdClassifierCV`` whose threshold maximises precision subject to the same
    recall target on out-of-fold predictions, and refitted on the whole training part.

    Args:
        family: one of :data:`FAMILIES`.
        param_grid: the family's parameter grid (pipeline step__param -> values).
        x: training features (columns as ``FEATURE_NAMES``).
        y: training labels.
        config: floor, margin, folds, seed and parallelism.
    """
    from sklearn.model_selection import GridSearchCV, ParameterGrid

    # One combination (the quick grid): worker processes would cost more than they save.
    jobs = 1 if len(ParameterGrid(dict(param_grid))) == 1 else config.n_jobs
    target = min(1.0, config.recall_floor + config.recall_margin)
    folds = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
    search = GridSearchCV(
        make_pipeline(family, config.seed), dict(param_grid), scoring=_proba_scorer(target),
        cv=folds, n_jobs=jobs, refit=False,
    )
    search.fit(x, y)
    best = make_pipeline(family, config.seed).set_params(**search.best_params_)
    tuned = TunedThresholdClassifierCV(
        best, scoring=threshold_scorer(target), response_method="predict_proba",
        cv=folds, refit=True, n_jobs=jobs, random_state=config.seed,
        store_cv_results=True,
    )
    tuned.fit(x, y)
    return FittedCandidate(
        family=family, model=tuned, best_params=dict(search.best_params_),
        cv_score=float(search.best_score_), cv_results=search.cv_results_,
        threshold=float(tuned.best_threshold_),
    )
