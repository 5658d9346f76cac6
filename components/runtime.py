"""What every component shares: the image it runs in and the settings it builds from parameters.

Components receive the database and MLflow coordinates as pipeline parameters (the Vertex
scheduler passes them; locally ``pipelines run --local`` does) and turn them into the one
:class:`~potability.config.Settings` the rest of the code understands, so the same names
flow from Terraform to :func:`potability.db.connect` unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

from potability.config import Settings, load_settings

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


def step_settings(
    database_url: str = "",
    cloud_sql_instance: str = "",
    database_name: str = "",
    database_user: str = "",
    mlflow_tracking_uri: str = "",
    model_name: str = "",
    mlflow_credentials_secret: str = "",
) -> Settings:
    """Settings for a component from its parameters, completed by the environment.

    Parameters win over the environment; empty parameters fall back to it (locally the
    env file of the stack, on GCP whatever the image sets). The Cloud SQL connector is used
    when ``cloud_sql_instance`` is set, exactly as everywhere else.

    Args:
        database_url: local DSN (``""`` on GCP).
        cloud_sql_instance: Cloud SQL connection name ``project:region:instance`` (GCP).
        database_name: database name for the connector.
        database_user: IAM database user for the connector.
        mlflow_tracking_uri: MLflow tracking server.
        model_name: registered model name.
        mlflow_credentials_secret: Secret Manager secret with the MLflow ``pipelines`` user's
            password (GCP); when set, this process logs in to MLflow with it.
    """
    base = load_settings()
    changes: dict[str, Any] = {}
    if database_url or cloud_sql_instance:
        changes.update(database_url=database_url, cloud_sql_instance=cloud_sql_instance)
    if database_name:
        changes["db_name"] = database_name
    if database_user:
        changes["db_user"] = database_user
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
    from potability.secret_manager import MLFLOW_PIPELINES_USER, access_secret

    export_mlflow_credentials(MLFLOW_PIPELINES_USER, access_secret(secret, session))
