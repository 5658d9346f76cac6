"""How models are saved to MLflow: skops (no pickle), with the exact types the model uses.

MLflow 3 saves scikit-learn models with skops, which refuses to load any type not listed as
trusted. We list the types of the estimator being saved - our own training code, at save time -
so a loaded artifact can contain nothing else (a tampered file with extra types is refused),
and serving never needs ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``.
"""

from __future__ import annotations

from typing import Any


def trusted_types(estimator: Any) -> list[str]:
    """The fully qualified types skops finds untrusted by default in ``estimator``."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))


def sklearn_save_kwargs(estimator: Any) -> dict[str, Any]:
    """Keyword arguments for ``mlflow.sklearn.log_model``/``save_model``."""
    return {"serialization_format": "skops", "skops_trusted_types": trusted_types(estimator)}
