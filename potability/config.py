"""All configuration, read from the environment in one place.

The same names are set by Terraform on Google Cloud (function environment variables) and by
``potability up`` locally (``.potability/env``), so a setting is never sent under one name and
read under another. Nothing else in the code reads ``os.environ``: every process builds its
settings with :func:`load_settings` (the environment completed by the local stack's env file,
which does not exist on GCP), and background processes get their environment from
:func:`child_environment`. The settings are pydantic-settings models, each variable validated
by its field's type; lists are comma-separated text, not JSON (``NoDecode``:
https://docs.pydantic.dev/latest/concepts/pydantic_settings/#disabling-json-parsing).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_MODEL_NAME = "water-potability"
DEFAULT_DB_NAME = "potability"
DEFAULT_PIPELINE_SCHEDULE = "0 3 * * *"
"""Daily at 03:00, as Terraform's ``schedule`` variable (Cloud Scheduler, unix-cron)."""
DEFAULT_SCHEDULE_TIME_ZONE = "Etc/UTC"
"""As Terraform's ``schedule_time_zone`` variable."""
ENV_FILE = "env"
"""The local stack's settings file under ``home``: ``KEY='VALUE'`` lines (``potability env``)."""


def token_sha256(token: str) -> str:
    """How a regulator token is published in ``SAMPLES_TOKEN_SHA256`` (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _items(value: str) -> tuple[str, ...]:
    """``"a, b,"`` -> ``("a", "b")``."""
    return tuple(x.strip() for x in value.split(",") if x.strip())


def _pairs(value: str) -> tuple[tuple[str, str], ...]:
    """``"a=x, b=y"`` -> ``(("a", "x"), ("b", "y"))``; a pair without ``=`` is an error."""
    pairs = []
    for item in _items(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ValueError(f"expected service=user pairs separated by commas, got {item!r}")
        pairs.append((key.strip(), val.strip()))
    return tuple(pairs)


def _bindings(value: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{"who": ["id", ...]}`` (JSON) -> ``(("who", ("id", ...)), ...)``; refuses other shapes."""
    if not value.strip():
        return ()
    data = json.loads(value)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
        for k, v in data.items()
    ):
        raise ValueError('expected a JSON object {"caller": ["sensor-id", ...]}')
    return tuple((k, tuple(v)) for k, v in sorted(data.items()))


def _text(parse: Callable[[str], Any]) -> BeforeValidator:
    """``parse`` for a variable's text; values given in code (tuples) are left to the type."""
    return BeforeValidator(lambda v: parse(v) if isinstance(v, str) else v)


Items = Annotated[tuple[str, ...], NoDecode, _text(_items)]
Pairs = Annotated[tuple[tuple[str, str], ...], NoDecode, _text(_pairs)]
Bindings = Annotated[tuple[tuple[str, tuple[str, ...]], ...], NoDecode, _text(_bindings)]
Env = Literal["local", "gcp"]
EndpointMode = Literal["local", "vertex"]
PromotionApproval = Literal["auto", "manual"]


class _Variables(BaseSettings):
    """What :class:`Settings` and :class:`ServingSettings` share: each field is read from the
    variable of its name in capitals (or the ``validation_alias`` it names), text without
    surrounding spaces, frozen, defaults validated too (BaseSettings' ``validate_default``); the
    docstring under a field is its description (:func:`configuration_markdown`)."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_by_name=True,  # Settings(database_url=...) as well as the variables
        use_attribute_docstrings=True,
        protected_namespaces=(),  # model_name, model_uri
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` is its arguments and the defaults, nothing else: the environment is
        read by :meth:`from_env` alone, so ``Settings(database_url=...)`` never picks up a
        stray variable."""
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _stripped(cls, value: Any, info: ValidationInfo) -> Any:
        """Text without surrounding spaces, except a password (read as it is)."""
        if isinstance(value, str) and info.field_name != "db_password":
            return value.strip()
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings ``environ`` (default: the process environment) sets, the defaults for
        the rest. Any value that does not parse is refused with every such variable named and
        shown (cut at 64 characters): one start-up to fix them all."""
        environ = os.environ if environ is None else environ
        source = EnvSettingsSource(cls)  # pydantic-settings' reader of the variables, over the
        # mapping given; capitals only: with validate_by_name it would read `db_name` as well
        source.env_vars = {k: v for k, v in environ.items() if k.isupper()}
        try:
            return cls(**source())
        except ValidationError as exc:
            reasons: dict[str, list[str]] = {}
            for error in exc.errors(include_url=False):
                reasons.setdefault(str(error["loc"][0]), []).append(error["msg"])
            shown = {name: environ.get(name, "") for name in reasons}
            shown = {k: v if len(v) <= 64 else v[:64] + "..." for k, v in shown.items()}
            raise ValueError(
                "invalid settings: "
                + "; ".join(f"{k}={shown[k]!r}: {'; '.join(v)}" for k, v in reasons.items())
            ) from None

    def with_(self, **changes: Any) -> Self:
        """A copy with some fields changed (tests and the local stack use it), validated as
        the fields are: a value of the wrong type or an unknown name is refused."""
        return self.model_validate({**dict(self), **changes})


class Settings(_Variables):
    """Everything a process of the system needs to know about where things are."""

    env: Env = Field(default="local", validation_alias="POTABILITY_ENV")
    """``local`` (embedded stack) or ``gcp``."""
    home: Annotated[Path, AfterValidator(Path.absolute)] = Field(
        default=Path(".potability"), validation_alias="POTABILITY_HOME"
    )
    """Local state folder: database files, MLflow artifacts, pids, logs."""
    database_url: str = ""
    """Local DSN, e.g. ``postgresql://postgres@/potability?host=/path/to/socketdir``."""
    cloud_sql_instance: str = ""
    """Cloud SQL connection name ``project:region:instance``; selects the connector."""
    db_name: str = DEFAULT_DB_NAME
    """Database name (Cloud SQL, and the embedded server's database)."""
    db_user: str = ""
    """Database user on Cloud SQL (an IAM service account user unless ``DB_IAM_AUTH`` is off)."""
    db_password: SecretStr = SecretStr("")
    """Database password, only without IAM database authentication (read as is, not stripped)."""
    db_iam_auth: bool = True
    """IAM database authentication through the Cloud SQL connector."""
    mlflow_tracking_uri: str = ""
    """The MLflow tracking server."""
    model_name: str = DEFAULT_MODEL_NAME
    """The registered model (MLflow and Vertex AI)."""
    endpoint_mode: EndpointMode = "local"
    """``local`` (HTTP to our model server) or ``vertex`` (Vertex AI endpoint)."""
    model_server_url: str = ""
    """Our model server, with ``ENDPOINT_MODE=local``."""
    google_cloud_project: str = ""
    """Google Cloud project (``ENDPOINT_MODE=vertex``, submitting the pipeline)."""
    google_cloud_region: str = ""
    """Google Cloud region of the endpoint and the pipeline."""
    vertex_endpoint_id: str = ""
    """The Vertex AI endpoint predict calls with ``ENDPOINT_MODE=vertex``."""
    samples_token_sha256: Annotated[Items, AfterValidator(lambda v: tuple(map(str.lower, v)))] = ()
    """sha256 hex digests of bearer tokens allowed to post lab samples (never plain tokens)."""
    samples_token_secret: str = ""
    """GCP: Secret Manager secret (``projects/P/secrets/S``) holding the regulator tokens'
    hashes, re-read every 30 s so a revocation takes effect within a minute
    (``functions/regulator_tokens.py``). Empty: ``samples_token_sha256`` / the env file."""
    samples_trust_platform_identity: bool = False
    """On GCP: the caller's Google ID token is verified (``functions/auth.py``) and its
    e-mail recorded as submitter."""
    samples_id_token_audience: Items = ()
    """Audiences a regulator's ID token may carry: the samples function's URLs (Terraform sets
    its ``cloudfunctions.net`` and ``run.app`` URLs). Empty on GCP: every request is refused."""
    id_token_platform_verified: bool = False
    """On GCP (Terraform sets it on predict and add_sample): the functions run behind Cloud
    Run's IAM check, which verifies the caller's ID token and forwards it with the signature
    replaced by `SIGNATURE_REMOVED_BY_GOOGLE`; that marker is then accepted in place of the
    signature (``functions/auth.py``). Off: only tokens with a valid Google signature."""
    predict_id_token_audience: Items = ()
    """On GCP: the predict function's URLs, the audiences a sensor's ID token may carry; set,
    predict verifies the token and binds the caller to its sensors (``functions/callers.py``)."""
    predict_sensor_bindings: Bindings = ()
    """Service account -> the sensor ids it may write (``PREDICT_SENSOR_BINDINGS``, JSON;
    Terraform's ``sensor_bindings``)."""
    sensor_token_bindings: Bindings = ()
    """Locally: sha256 of a sensor's bearer token -> the sensor ids it may write
    (``SENSOR_TOKEN_BINDINGS``, JSON). Empty: local predict is open (docs/security.md)."""
    qc_match_window_minutes: float = 30.0
    """A lab sample confirms the nearest inference of its sensor within +/- this many minutes."""
    qc_precision_floor: float = 0.60
    """The live precision the sequential test (a CUSUM) watches for: a champion whose lab-checked
    potable calls drift from QC_PRECISION_EXPECTED towards this is flagged (docs/statistics.md)."""
    qc_precision_expected: float = 0.70
    """The live precision a champion is expected to hold: the test stays silent at it."""
    qc_alarm_limit: float = 7.0
    """The CUSUM's decision limit: <= 5% false alarms per half-year at 50 lab-checked potable
    calls a week; higher: fewer false alarms, slower detection."""
    qc_min_matches: int = 20
    """Lab-checked potable calls of the champion before its fresh-sample precision is shown."""
    qc_drift_window_days: float = 7.0
    """Drift compares the inferences of the last this-many days with the training data."""
    predict_max_readings: int = 500
    """Most readings one predict request may carry (Vertex online payloads stay well < 1.5 MB)."""
    samples_max_batch: int = 500
    """Most lab samples one add_sample request may carry."""
    max_body_bytes: int = 1_048_576
    """Largest request body the functions read; bigger bodies are refused with 413 unread."""
    endpoint_timeout_seconds: float = 10.0
    """How long predict waits for the model endpoint before answering 503 (retryable)."""
    db_pool_size: int = 8
    """Most database connections one function instance holds open (one per serving thread)."""
    db_pool_wait_seconds: float = 5.0
    """How long a request waits for a pooled connection when all are in use, before a
    retryable 503: shorter than a client's patience, longer than a burst's queue."""
    status_db_pool_size: int = 2
    """The status function's own connection budget per instance: the page refreshes its data
    once per ``status_refresh_seconds`` (single flight), so however many readers there are it
    never holds more than this - connections predict needs stay free."""
    status_refresh_seconds: float = 30.0
    """How old the status page's data may be: one database refresh per instance per interval,
    every reader in between served from memory (0 disables the cache: tests)."""
    status_statement_timeout_ms: int = 5000
    """``statement_timeout`` of every status query: a slow page fails (503), never piles up."""
    pipeline_image: str = ""
    """The project image the pipeline's components run in (compile time; ``potability pipeline
    compile`` bakes it into the YAML). Empty: ``potability:local`` (local runs need no image)."""
    pipeline_root: str = ""
    """Vertex pipeline root, ``gs://<bucket>/pipeline-root`` (``submit``)."""
    pipeline_service_account: str = ""
    """Service account Vertex runs the pipeline as (``submit``)."""
    add_sample_url: str = ""
    """Where ``potability samples import`` posts (locally published by ``potability functions``)."""
    regulator_token: SecretStr = SecretStr("")
    """A regulator's plain token for ``potability samples import`` (``REGULATOR_TOKEN``; a
    client setting - the functions only ever hold its sha256)."""
    status_url: str = ""
    """The public status page (alerts link to it)."""
    alert_webhook_url: str = ""
    """Where alerts are POSTed as JSON (locally; on GCP Cloud Monitoring notifies). Empty: the
    alerts are only logged and listed on the status page."""
    alert_stale_hours: float = 36.0
    """No successful pipeline run for longer than this raises ``pipeline_stale``."""
    alert_error_rate: float = 0.05
    """Share of 5xx answers of predict/add_sample that raises ``function_errors``..."""
    alert_error_window_seconds: float = 300.0
    """...over this sliding window..."""
    alert_error_min_requests: int = 20
    """...once the window holds at least this many requests (fewer is noise)."""
    alert_webhook_attempts: int = 3
    """Webhook delivery attempts per alert (backoff 0.5 s, 1 s, ...)."""
    alert_webhook_timeout_seconds: float = 5.0
    """Timeout of one webhook attempt."""
    pipeline_schedule: str = DEFAULT_PIPELINE_SCHEDULE
    """Cron expression of the local scheduler (``potability up``), the same kind and default as
    Terraform's ``schedule`` variable; empty disables the local schedule."""
    pipeline_schedule_time_zone: str = DEFAULT_SCHEDULE_TIME_ZONE
    """IANA time zone the schedule is read in (Terraform's ``schedule_time_zone``)."""
    pipeline_schedule_params: Items = ()
    """``key=value`` pipeline parameters the local scheduled runs send besides the defaults
    (Terraform's schedule sends its variables, whose defaults are the pipeline's), e.g.
    ``grids=quick,cv_folds=3``."""
    pipeline_network_attachment: str = ""
    """Network attachment of the runs' Private Service Connect interface (``submit``; Terraform's
    ``network_attachment`` output), how a run reaches Cloud SQL and MLflow - as the schedule's."""
    mlflow_credentials_secret: str = ""
    """Secret Manager secret (``projects/P/secrets/S``) holding the password of MLflow's
    ``pipelines`` user on GCP (MLflow's basic-auth app; Terraform's
    ``google_secret_manager_secret.mlflow["pipelines"]``). Empty: MLflow needs no login
    (local)."""
    pipeline_template_uri: str = ""
    """The published pipeline, ``https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG``
    (``publish`` prints it; ``submit`` runs it). Empty: ``submit`` sends the local YAML inline."""
    promotion_approval: PromotionApproval = "auto"
    """``auto``: a challenger that passes the evidence test is promoted at once; ``manual``: it
    waits as a candidate for ``potability model approve`` (Terraform's ``promotion_approval``;
    the local scheduled runs send it as the pipeline parameter of that name)."""
    candidate_expiry_days: float = 7.0
    """A candidate waiting for approval longer than this expires (``candidate_expiry_days``)."""
    promotion_false_rate: float = 0.05
    """The largest share of quarters (90 days) in which a challenger no better than the
    champion may be promoted: each look tests at 1 - this / the quarter's looks
    (``promotion_false_rate``; docs/statistics.md)."""
    promotion_look_days: int = 7
    """Days between promotion tests ("looks"; 13 a quarter): the runs in between keep the
    champion untested (``promotion_look_days``; docs/statistics.md says why 7)."""
    inference_retention_days: int = 90
    """Days of readings the database keeps (Terraform's ``inference_retention_days``): older
    days are exported to the archive, verified, then dropped by the hourly maintenance
    (docs/inference-log.md says why 90: the hot window; the archive is the long-term record)."""
    inference_request_key_days: float = 7.0
    """The idempotency window: how long predict recognises a retried request key
    (functions/openapi.yaml says it); the hourly maintenance prunes older keys."""
    inference_archive_uri: str = ""
    """Where expired days of the inference log are archived as Parquet: ``gs://BUCKET/PREFIX``
    on GCP (Terraform sets it), a local folder otherwise; empty: ``<home>/inference-archive``."""
    archive_query_memory_limit: str = "1GB"
    """``potability archive query``: DuckDB's memory limit (its size syntax, e.g. ``512MB``,
    ``4GB``); past it DuckDB spills to a temporary folder instead of growing
    (potability/inference/archive_query.py says why, bench/README.md measures it)."""
    archive_query_threads: int = 2
    """``potability archive query``: DuckDB's threads; memory grows with each."""
    db_role_members: Pairs = ()
    """``potability migrate``: (service, database user) pairs made members of the service's
    access role (``DB_ROLE_MEMBERS="predict=user1,status=user2"``; Terraform sets it on the
    migration job)."""


def configuration_markdown() -> str:
    """docs/configuration.md: one row per :class:`Settings` field from the model's JSON schema -
    its variable, its default and its description (the field's docstring) - so the documented
    names and defaults are the code's (``make docs``; tests/potability/test_config.py checks
    the file is current)."""

    def shown(value: object) -> str:
        if value in ("", []):
            return "(empty)"
        return f"`{json.dumps(value) if isinstance(value, bool) else value}`"

    properties = Settings.model_json_schema()["properties"]
    rows = [
        f"| `{name}` | {shown(p['default'])} | "
        + " ".join(p.get("description", "").split()).replace("``", "`").replace("|", "/")
        + " |"
        for name, p in properties.items()
    ]
    return "\n".join(
        [
            "# Configuration",
            "",
            "<!-- Generated from potability/config.py (the JSON schema of the Settings model: its",
            "fields and their docstrings) by `make docs`; edit them there. -->",
            "",
            "All settings come from environment variables, read in one place",
            "(`potability/config.py`: every process calls its one loader, `load_settings`, which",
            "completes the environment with `.potability/env` when it exists); Terraform sets the",
            "same names on Google Cloud and `potability up` writes them to `.potability/env`",
            "locally. A variable that is not set leaves the default; text is stripped of",
            "surrounding spaces; flags are `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`;",
            "lists are comma-separated; modes are one of the values the table names. Values are",
            "validated by their type (pydantic-settings): anything else - `DB_IAM_AUTH=ture`, an",
            "`ENDPOINT_MODE` that is neither `local` nor `vertex` - stops the process at",
            "start-up with every bad variable named, never a silent default.",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


class ServingSettings(_Variables):
    """The model server's settings: Vertex AI's custom-container contract (``AIP_*``,
    https://cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements) plus our
    names, read and refused like :class:`Settings`."""

    port: int = Field(default=8080, validation_alias="AIP_HTTP_PORT")
    host: str = Field(default="0.0.0.0", validation_alias="MODEL_SERVER_HOST")
    health_route: str = Field(default="/health", validation_alias="AIP_HEALTH_ROUTE")
    predict_route: str = Field(default="/predict", validation_alias="AIP_PREDICT_ROUTE")
    model_uri: str = Field(
        default="", validation_alias=AliasChoices("AIP_STORAGE_URI", "MODEL_URI")
    )
    """``MODEL_URI``; Vertex AI's ``AIP_STORAGE_URI`` (the model's artifacts) wins when set."""
    model_name: str = DEFAULT_MODEL_NAME
    model_version: str = ""
    """``MODEL_VERSION``; unset, the version of a ``models:/name/N`` URI, else ``unknown``."""
    tracking_uri: str = Field(default="", validation_alias="MLFLOW_TRACKING_URI")
    threads: int = Field(default=8, validation_alias="MODEL_SERVER_THREADS")
    handover_file: str = Field(default="", validation_alias="MODEL_SERVER_HANDOVER_FILE")
    """Set by a local switch (:func:`potability.serving.model_server.switch_local`): load the model,
    write this file, then take the port over from the old server as soon as it is free."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """As :meth:`_Variables.from_env`; an empty ``AIP_STORAGE_URI`` counts as unset: Vertex
        AI sets it for a model uploaded with an ``artifactUri``, and an empty one must not hide
        ``MODEL_URI`` (the alias choice takes the first variable present)."""
        e = os.environ if environ is None else environ
        if e.get("AIP_STORAGE_URI") == "":
            e = {k: v for k, v in e.items() if k != "AIP_STORAGE_URI"}
        return super().from_env(e)

    @field_validator("model_version")
    @classmethod
    def _version_of_the_uri(cls, version: str, info: ValidationInfo) -> str:
        uri = info.data.get("model_uri", "")
        if not version and uri.startswith("models:/") and "@" not in uri:
            version = uri.rstrip("/").rsplit("/", 1)[-1]
        return version or "unknown"


# --- the local stack's env file and the one loader ---------------------------------------


def env_file(home: Path) -> Path:
    """Where ``potability up`` (and later steps) publish the local stack's settings."""
    return home / ENV_FILE


def read_env(home: Path) -> dict[str, str]:
    """Settings written by ``up`` (empty when the stack was never started, and on GCP), read
    by python-dotenv - the reader behind pydantic-settings' ``env_file`` - so the quoting
    :func:`update_env` writes and a line appended by hand (docs/alerts.md) both read back."""
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(env_file(home)).items() if v is not None}


def private_home(home: Path) -> Path:
    """``home`` created (or tightened) to mode 0700: it holds the database, tokens and the env
    file, readable by this user only whatever the umask. As root, 0711: pgserver then runs the
    embedded PostgreSQL as an unprivileged user of its own, which must still reach ``pg/``
    (it cannot list the folder; the env and token files stay 0600)."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o711 if os.geteuid() == 0 else 0o700)
    return home


def update_env(home: Path, **values: str) -> dict[str, str]:
    """Merge ``values`` into the env file (other services add their URLs here). The file is
    mode 0600 (it may hold a DATABASE_URL with a password) and replaced atomically, all values
    at once, so a process re-reading it never sees half of it (python-dotenv's ``set_key``
    rewrites one key per replace). Each value is single-quoted with ``\\`` and ``'`` escaped,
    as ``set_key`` quotes, which python-dotenv reads back exactly (spaces, ``#``, quotes)."""
    merged = {**read_env(home), **values}
    private_home(home)
    path = env_file(home)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for key, value in sorted(merged.items()):
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            handle.write(f"{key}='{quoted}'\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return merged


def load_settings(home: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of any process: the environment, completed by the stack's env file.

    The environment wins (Terraform sets it on GCP, where no env file exists; a user may
    override one value locally); the env file fills in what ``potability up`` published.

    Args:
        home: the local state folder (default ``POTABILITY_HOME`` or ``.potability``).
        environ: the environment to read (default the process environment).
    """
    e = os.environ if environ is None else environ
    home = home or Settings.from_env(e).home
    return Settings.from_env({**read_env(home), **e, "POTABILITY_HOME": str(home)})


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a background process: this one's, plus ``extra``."""
    return {**os.environ, **(extra or {})}


def export_mlflow_credentials(username: str, password: str) -> None:
    """Log this process's MLflow client in (basic auth): MLflow reads exactly these two
    variables (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``) on every request,
    so they are set here, once, instead of threading a password through every call."""
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
