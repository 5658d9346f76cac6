"""What every component shares: the image it runs in and the settings it builds from parameters.

Components receive the database (one ``database`` parameter, :data:`DATABASE_KEYS`) and MLflow
coordinates as pipeline parameters (the Vertex scheduler passes them; locally ``potability
pipeline run --local`` does) and turn them into the one :class:`~potability.config.Settings`
the rest of the code understands, so the same values flow from Terraform to
:func:`potability.db.connect` unchanged. A failing step records itself here too
(:func:`failure_recorded`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from potability.config import Settings, load_settings

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "potability:local"
"""Image named in a YAML compiled without ``PIPELINE_IMAGE``; local runs ignore images."""


def image(settings: Settings | None = None) -> str:
    """The project image components run in (``PIPELINE_IMAGE``, else :data:`DEFAULT_IMAGE`)."""
    settings = settings or load_settings()
    return settings.pipeline_image or DEFAULT_IMAGE


def as_component(func: Callable[..., Any], base_image: str) -> Any:
    """Turn a component body into a KFP component running in ``base_image``.

    ``install_kfp_package=False``: the project image (and the local venv) already has the
    pinned kfp, so nothing is pip-installed at run time.
    """
    from kfp import dsl

    return dsl.component(func, base_image=base_image, install_kfp_package=False)


DATABASE_KEYS = ("url", "cloud_sql_instance", "name", "user")
"""The keys of the pipeline's one ``database`` parameter: a KFP ``dict`` parameter (KFP maps
``dict`` to an object and passes it as JSON,
https://kubeflow.org/docs/components/pipelines/v2/data-types/parameters/), a STRUCT in the
compiled spec and a JSON object in the PipelineJob's ``runtimeConfig.parameterValues``
(``additionalProperties: any`` in aiplatform v1's discovery document)."""


def database_parameter(settings: Settings) -> dict[str, str]:
    """The ``database`` pipeline parameter naming ``settings``' database: the local DSN
    (``url``) or the Cloud SQL connection name, database and IAM user the connector takes."""
    return {
        "url": settings.database_url,
        "cloud_sql_instance": settings.cloud_sql_instance,
        "name": settings.db_name,
        "user": settings.db_user,
    }


def step_settings(
    database: Mapping[str, str] | None = None,
    mlflow_tracking_uri: str = "",
    model_name: str = "",
    mlflow_credentials_secret: str = "",
) -> Settings:
    """Settings for a component from its parameters, completed by the environment.

    Parameters win over the environment; empty parameters fall back to it (locally the
    env file of the stack, on GCP whatever the image sets). The Cloud SQL connector is used
    when ``cloud_sql_instance`` is set, exactly as everywhere else.

    Args:
        database: the ``database`` parameter (:data:`DATABASE_KEYS`): ``url`` the local DSN
            (``""`` on GCP); ``cloud_sql_instance`` the Cloud SQL connection name
            ``project:region:instance``; ``name`` and ``user`` the database and IAM user for
            the connector. Missing keys count as empty; unknown ones are refused.
        mlflow_tracking_uri: MLflow tracking server.
        model_name: registered model name.
        mlflow_credentials_secret: Secret Manager secret with the MLflow ``pipelines`` user's
            password (GCP); when set, this process logs in to MLflow with it.

    Raises:
        ValueError: ``database`` has a key that is not one of :data:`DATABASE_KEYS`.
    """
    database = dict(database or {})
    unknown = sorted(set(database) - set(DATABASE_KEYS))
    if unknown:
        raise ValueError(
            f"the database parameter has unknown keys {unknown}; "
            f"its keys are {', '.join(DATABASE_KEYS)}"
        )
    url, instance = database.get("url", ""), database.get("cloud_sql_instance", "")
    base = load_settings()
    changes: dict[str, Any] = {}
    if url or instance:
        changes.update(database_url=url, cloud_sql_instance=instance)
    if database.get("name"):
        changes["db_name"] = database["name"]
    if database.get("user"):
        changes["db_user"] = database["user"]
    if mlflow_tracking_uri:
        changes["mlflow_tracking_uri"] = mlflow_tracking_uri
    if model_name:
        changes["model_name"] = model_name
    if mlflow_credentials_secret:
        changes["mlflow_credentials_secret"] = mlflow_credentials_secret
    settings = base.with_(**changes)
    if settings.mlflow_credentials_secret and settings.mlflow_tracking_uri:
        mlflow_login(settings.mlflow_credentials_secret)
    return settings


def mlflow_login(secret: str, session: Any = None) -> None:
    """Log this step's MLflow client in as the ``pipelines`` user, with the password read from
    Secret Manager by the step's own service account (never a parameter or a command line).

    Args:
        secret: ``projects/P/secrets/S``.
        session: an authorized HTTP session (tests inject one; default: the step's credentials).
    """
    from potability.config import export_mlflow_credentials
    from potability.gcp.secret_manager import MLFLOW_PIPELINES_USER, access_secret

    export_mlflow_credentials(MLFLOW_PIPELINES_USER, access_secret(secret, session))


def record_failure(settings: Settings, run_id: str, error: str) -> None:
    """Record the run as failed (:func:`potability.governance.run_record.mark_failed`: the row, the
    ``pipeline_run_failed`` alert) and, if this run had already moved the ``champion`` alias
    (promote succeeded, a later step failed), put it back: a failed run never moves the alias.

    Args:
        settings: database, MLflow tracking URI and model name.
        run_id: the pipeline job name.
        error: what failed (step and message).
    """
    from potability.governance import run_record
    from training.promotion import restore_alias

    details = run_record.mark_failed(settings, run_id, error)
    if restore_alias(settings, details):
        log.warning("run %s failed after moving the champion alias; alias restored", run_id)


@contextlib.contextmanager
def failure_recorded(settings: Settings, run_id: str, step: str) -> Iterator[None]:
    """Run a step; on any error record the run's failure (best effort) and re-raise.

    Every step wraps its work in it, so a failure is recorded the same way on Vertex and under
    ``kfp.local`` (neither needs an exit handler, which ``kfp.local`` lacks)."""
    try:
        yield
    except BaseException as exc:
        try:
            record_failure(settings, run_id, f"{step}: {type(exc).__name__}: {exc}")
        except Exception:  # the original error matters more
            log.exception("could not record the failure of run %s", run_id)
        raise
