"""The figures attached to each candidate's MLflow run (matplotlib, headless)."""

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], title: str) -> Figure:
    """A 2x2 confusion matrix (rows: true, columns: predicted; 0 = not potable, 1 = potable)."""
    fig, ax = plt.subplots(figsize=(4, 3.6))
    data = np.asarray(matrix)
    ax.imshow(data, cmap="Blues")
    for (i, j), value in np.ndenumerate(data):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > data.max() / 2 else "black",
        )
    ax.set_xticks([0, 1], ["not potable", "potable"])
    ax.set_yticks([0, 1], ["not potable", "potable"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def precision_recall_figure(
    y_true: Any, proba: Any, threshold: float, recall_floor: float, title: str
) -> Figure:
    """The precision-recall curve with the chosen threshold's operating point marked."""
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    y = np.asarray(y_true)
    p = np.asarray(proba)
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    point_p = tp / predicted.sum() if predicted.sum() else 0.0
    point_r = tp / (y == 1).sum() if (y == 1).sum() else 0.0
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, lw=1.5, label="precision-recall curve")
    ax.axvline(recall_floor, color="grey", ls="--", lw=1, label=f"recall floor {recall_floor:.2f}")
    ax.plot(
        [point_r],
        [point_p],
        "o",
        color="crimson",
        ms=8,
        label=f"threshold {threshold:.3f}: P={point_p:.3f} R={point_r:.3f}",
    )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def threshold_tuning_figure(thresholds: Any, scores: Any, chosen: float, title: str) -> Figure:
    """The tuning objective (mean over training folds) against the threshold, chosen marked."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(thresholds, scores, lw=1.5)
    ax.axvline(chosen, color="crimson", ls="--", label=f"chosen {chosen:.3f}")
    ax.set_xlabel("threshold on P(potable)")
    ax.set_ylabel("precision if recall >= target, else 0")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def reliability_figure(
    y_true: Any, probabilities: dict[str, Any], title: str, bins: int = 10
) -> Figure:
    """Reliability diagram: observed potable share against mean predicted probability, per
    equal-count bin, one line per model (the diagonal is perfect calibration), with each
    model's Brier score in the legend."""
    from sklearn.calibration import calibration_curve

    y = np.asarray(y_true).astype(int)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    for label, proba in probabilities.items():
        p = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
        observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        brier = float(np.mean((p - y) ** 2))
        ax.plot(predicted, observed, "o-", ms=4, lw=1.5, label=f"{label} (Brier {brier:.4f})")
    ax.set_xlabel("mean predicted P(potable)")
    ax.set_ylabel("observed potable share")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
