"""The OpenAPI 3.1 document of the three functions, generated from the models that enforce it.

Request schemas are the JSON schemas of the very pydantic models that validate the bodies
(:mod:`functions.validation`, built from :mod:`potability.features`); the answers' schemas are
the ``TypedDict`` s below, which say what predict, add_sample and status build. Limits come
from :class:`~potability.config.Settings` defaults. So the published document cannot drift from
what the functions accept: a test regenerates it and compares with ``functions/openapi.yaml``,
validates it with ``openapi-spec-validator``, checks answers against it, and the fuzz tests
are driven by it. OpenAPI 3.1's schemas are JSON Schema 2020-12, pydantic's dialect
(https://spec.openapis.org/oas/v3.1.0#schema-object,
https://docs.pydantic.dev/latest/concepts/json_schema/).

    python -m functions.openapi > functions/openapi.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from functions.validation import Id, predict_adapter, samples_adapters
from potability.config import Settings

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")
REF = "#/components/schemas/{model}"

# --- the answers -----------------------------------------------------------------------------


class Prediction(TypedDict):
    """One reading's answer."""

    reading_index: int
    potable: Literal[0, 1]
    """1 when `probability` reaches the model's decision threshold, chosen in training for the
    highest precision at a recall of at least the recall floor (default 0.20); so 1 can mean a
    probability well below 0.9 and 0 one above 0.5."""
    probability: float
    """Calibrated probability that the sample is potable: among readings given p = 0.7, about
    70% are potable (checked by cross-validation; sigmoid or isotonic calibration fitted on
    training folds only, reliability diagram and Brier score in MLflow). An estimate from nine
    measurements, not a lab result."""
    model_version: str
    request_id: str


class PredictResponse(TypedDict):
    """One prediction per reading, in the order sent."""

    request_id: str
    sensor_id: str
    model_name: str
    predictions: list[Prediction]


class SampleStatus(TypedDict):
    sample_id: str
    status: Literal["recorded", "already recorded"]


class SamplesResult(TypedDict):
    """What add_sample recorded (all or nothing)."""

    message: Literal["recorded", "already recorded"]
    recorded: int
    already_recorded: int
    submitted_by: NotRequired[str]
    samples: list[SampleStatus]


class ProblemEntry(TypedDict):
    """One field at fault."""

    detail: str
    field: str
    """What is wrong, e.g. readings[3].ph, body, Idempotency-Key (at most 64 characters)."""
    pointer: NotRequired[str]
    """RFC 6901 pointer into the request body (absent for a header or a dependency)."""


class Problem(TypedDict):
    """RFC 9457 problem details. `errors` lists every field at fault at once (the first is
    `field`); `error` (= `detail`) and `field` are kept for clients of the former format."""

    type: str
    """`about:blank`: the status says what kind of problem it is."""
    title: str
    """The status's phrase."""
    status: int
    detail: str
    instance: NotRequired[str]
    """The request's path."""
    errors: list[ProblemEntry]
    errors_omitted: NotRequired[int]
    """How many errors the list leaves out (it holds at most 100)."""
    error: str
    """= `detail`."""
    field: str
    """The first error's field, e.g. readings[3].ph, body, Authorization, database, endpoint."""
    request_id: NotRequired[str]


Time = str | None
"""An ISO 8601 UTC time (``...Z``), or null when there is none yet."""


class Champion(TypedDict):
    """The model in service and its held-out evidence."""

    name: str | None
    version: str | None
    family: str | None
    held_out_precision: float | None
    held_out_precision_interval: list[float | None] | None
    held_out_precision_reused_by_tests: bool
    held_out_recall: float | None
    threshold: float | None
    training_rows: int | None
    confirmed_at: Time
    decision: str | None


class LastRun(TypedDict):
    status: str | None
    decision: str | None
    started_at: Time
    finished_at: Time
    champion_version: str | None
    challenger_family: str | None
    challenger_precision: float | None
    challenger_recall: float | None
    recall_floor: float | None


class Window(TypedDict):
    total: int
    potable: int
    potable_share: float | None
    sensors: int
    by_sensor: list[dict[str, Any]]
    by_model_version: list[dict[str, Any]]
    start: Time


class Bucket(TypedDict):
    start: Time
    end: Time
    total: int
    potable: int


class Inferences(TypedDict):
    """The inference log's last 24 hours and 7 days, in whole UTC hours."""

    exact: bool
    pending_hours: list[str | None]
    last_24h: Window
    last_7d: Window
    hourly_24h: list[Bucket]
    daily_7d: list[Bucket]


class LabSamples(TypedDict):
    total: int
    last_24h: int
    last_7d: int
    potable_share_7d: float | None
    sensors_7d: int
    last_received_at: Time


class LivePrecision(TypedDict):
    """Precision on lab samples matched to inferences, per model version and period."""

    model_version: str
    period: str
    week_start: Time
    matches: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    precision: float | None
    recall: float | None
    flagged: bool


class QualityControl(TypedDict):
    """The latest ``potability qc`` run: live precision and drift."""

    computed_at: Time
    champion_fresh_precision: dict[str, Any] | None
    match_window_minutes: float | None
    precision_floor: float | None
    min_matches: int
    lab_samples: int
    matched_samples: int
    flagged: bool
    live: list[LivePrecision]
    drift: dict[str, Any]


class ModelHistory(TypedDict):
    """Model changes of the last ``days`` days, newest first; who made them is a role."""

    days: int
    held: dict[str, Any] | None
    changes: list[dict[str, Any]]


class Job(TypedDict):
    job: str
    last_succeeded_at: Time
    last_failed_at: Time
    failing: bool
    failed_step: str | None
    error_class: str | None
    failures_in_a_row: int
    quarantined_readings: int


class Alert(TypedDict):
    event: str
    title: str
    severity: str
    model_version: str | None
    detail: Any
    raised_at: Time


class TrafficDay(TypedDict):
    day: Time
    total: int
    potable: int
    potable_share: float | None
    hours_counted: int


class DriftFeature(TypedDict):
    feature: str
    psi: float | None
    status: str


class DriftDay(TypedDict):
    """The day's last quality-control run's drift."""

    day: Time
    computed_at: Time
    model_version: str | None
    features: list[DriftFeature]


class WeeklyPrecision(TypedDict):
    model_version: str
    period: str
    week_start: Time
    matches: int
    potable_calls: int
    confirmed: int
    precision: float | None
    interval_95: list[float | None] | None
    flagged: bool


class ModelChange(TypedDict):
    when: Time
    action: str
    version: str | None
    previous_version: str | None


class Trends(TypedDict):
    """The last ``days`` days (UTC), each read bounded by the window (docs/scale.md)."""

    days: int
    first_day: Time
    last_day: Time
    precision_floor: float | None
    traffic: list[TrafficDay]
    drift: list[DriftDay]
    drift_summary: list[dict[str, Any]]
    live_precision: list[WeeklyPrecision]
    model_changes: list[ModelChange]


class Status(TypedDict):
    """The status page's data (``?format=json``): public figures only, no identities."""

    generated_at: str
    stale: bool
    """True when the last refresh failed while the database was up: the data of `stale_since`."""
    stale_since: Time
    jobs: list[Job]
    alerts: list[Alert]
    model: Champion | None
    champion_fresh_precision: dict[str, Any] | None
    last_pipeline_run: LastRun | None
    inferences: Inferences
    lab_samples: LabSamples
    live_precision: LivePrecision | None
    quality_control: QualityControl | None
    model_history: ModelHistory
    trends: Trends


_ANSWERS: tuple[Any, ...] = (
    *(Prediction, PredictResponse, SampleStatus, SamplesResult, ProblemEntry, Problem),
    *(Champion, LastRun, Window, Bucket, Inferences, LabSamples, LivePrecision),
    *(QualityControl, ModelHistory, Job, Alert, Status),
    *(TrafficDay, DriftFeature, DriftDay, WeeklyPrecision, ModelChange, Trends),
)
for _answer in _ANSWERS:  # the docstrings under the fields become their descriptions
    _answer.__pydantic_config__ = ConfigDict(use_attribute_docstrings=True)

# --- the document ----------------------------------------------------------------------------


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON schema, shorter to read: no ``title`` on every property (``Sensor Id``,
    ``Ph``: descriptions say more, the models keep theirs), and a nullable value as
    ``type: [number, "null"]`` beside its constraints (they apply to numbers only, JSON Schema
    2020-12 section 6.2) instead of an ``anyOf`` of two schemas."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: Any) -> Any:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str) and inner["type"] != "null":
            return {**inner, "type": [inner["type"], "null"]}
        return self.get_flattened_anyof([inner, {"type": "null"}])


def _tidy(value: Any) -> Any:
    """Descriptions on one line (the models' docstrings wrap at 100 columns)."""
    if isinstance(value, dict):
        return {
            k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _tidy(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def schemas(settings: Settings | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the schema of each body and answer by name - a ``$ref`` for the models -, and every
    model's schema for ``components.schemas``), with the limits of ``settings``."""
    s = settings or Settings()
    one, batch = samples_adapters(s.samples_max_batch)
    inputs: list[tuple[str, Any, TypeAdapter[Any]]] = [
        ("predict", "validation", predict_adapter(s.predict_max_readings)),
        ("sample", "validation", one),
        ("samples", "validation", batch),
        ("id", "validation", TypeAdapter(Id)),
        *(
            (model.__name__, "serialization", TypeAdapter(model))
            for model in (PredictResponse, SamplesResult, Problem, Status)
        ),
    ]
    keyed, defs = TypeAdapter.json_schemas(
        inputs, ref_template=REF, union_format="primitive_type_array", schema_generator=_Schemas
    )
    return {key: value for (key, _), value in keyed.items()}, _tidy(defs["$defs"])


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _problem(description: str, retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": _content({"$ref": REF.format(model="Problem")}, "application/problem+json"),
    }
    if retry:
        answer["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer"},
            }
        }
    return answer


def _post(
    operation: str, summary: str, body: dict[str, Any], answers: dict[str, Any], **more: Any
) -> dict[str, Any]:
    errors = {
        "400": _problem(
            "Invalid input: `errors` lists every field at fault, `field` the first. "
            "Nothing written."
        ),
        "405": _problem("Wrong method (use POST)."),
        "413": _problem("Body or batch too large."),
        "415": _problem("Content-Type is not application/json."),
        "503": _problem("A dependency is down; nothing written. Retry after Retry-After.", True),
    }
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            **more,
            "requestBody": {"required": True, "content": _content(body)},
            "responses": dict(sorted({**answers, **errors}.items())),
        }
    }


def build_document(settings: Settings | None = None) -> dict[str, Any]:
    """The whole document (plain data, serialised by :func:`render`)."""
    s = settings or Settings()
    bodies, models = schemas(s)
    days = f"{s.inference_request_key_days:g}"
    predict = _post(
        "predict",
        "Potability of one reading or a batch, each inference logged.",
        bodies["predict"],
        {
            "200": {
                "description": "One prediction per reading, already logged.",
                "content": _content(bodies["PredictResponse"]),
            },
            "401": _problem(
                "Caller binding configured (GCP: always) and no valid ID token or sensor token."
            ),
            "403": _problem(
                "The caller may not write this sensor_id, or is bound to no sensor "
                "(docs/security.md)."
            ),
            "409": _problem(
                "The request id was used (by this caller, within the idempotency window) for "
                "different readings; nothing written."
            ),
            "502": _problem("The model endpoint answered something unusable."),
        },
        parameters=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": bodies["id"],
                "description": (
                    "Client request id: a retry with the same key returns the logged answer "
                    "(header Idempotent-Replayed: true) instead of a second inference. Keys are "
                    "scoped to the caller and recognised for the idempotency window, "
                    f"{days} days after the first request (INFERENCE_REQUEST_KEY_DAYS), "
                    "whichever day the retry arrives; after it the key is forgotten and the same "
                    "key is a new request. A request's readings are logged all or nothing."
                ),
            }
        ],
    )
    recorded = _content(bodies["SamplesResult"])
    add_sample = _post(
        "add_sample",
        "Add certified lab samples to the training table (regulators only).",
        {"anyOf": [bodies["sample"], bodies["samples"]]},
        {
            "201": {"description": "All samples recorded.", "content": recorded},
            "200": {
                "description": "Some or all samples were already recorded (identical values); "
                "nothing written twice.",
                "content": recorded,
            },
            "401": _problem("No bearer token."),
            "403": _problem("Not an authorised regulator."),
            "409": _problem(
                "A sample id is already recorded with other values, or by another submitter; "
                "nothing written."
            ),
        },
        security=[{"bearer": []}],
    )
    status_page = {
        "description": "The page (HTML), or its data as JSON (`?format=json`, or "
        "`Accept: application/json`); cached for a minute (`Cache-Control`).",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            **_content(bodies["Status"]),
        },
    }
    down = _problem(
        "The database is down: problem details, or a readable HTML page for a browser asking "
        "for the page. Retry after Retry-After.",
        True,
    )
    down["content"]["text/html"] = {"schema": {"type": "string"}}
    status = {
        "get": {
            "operationId": "status",
            "summary": "The public status page: model, inferences, lab samples, quality control.",
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["html", "json"]},
                    "description": "Answer as HTML or JSON (default: by the Accept header).",
                }
            ],
            "responses": {
                "200": status_page,
                "400": _problem("`format` is neither html nor json."),
                "405": _problem("Wrong method (use GET or HEAD)."),
                "503": down,
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Water potability functions",
            "version": "1.0.0",
            "description": (
                "HTTP Cloud Functions (2nd gen). Each operation is its own function with its own "
                "base URL (locally: PREDICT_URL, ADD_SAMPLE_URL and STATUS_URL in `potability "
                "env`; on GCP: the Terraform outputs). A function answers on any path, so call "
                "the base URL or the path shown here. Every response carries `X-Request-Id`."
            ),
        },
        "servers": [
            {
                "url": "http://127.0.0.1:{port}",
                "description": "a local function",
                "variables": {"port": {"default": "8081"}},
            }
        ],
        "paths": {"/predict": predict, "/add_sample": add_sample, "/status": status},
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "Locally: a regulator token whose sha256 is listed in "
                        "SAMPLES_TOKEN_SHA256. On GCP: a Google ID token of a member of "
                        "the regulator group for the function's URL, in Authorization "
                        "(never X-Serverless-Authorization), verified by the function "
                        "itself."
                    ),
                }
            },
            "schemas": models,
        },
    }


def render(document: dict[str, Any] | None = None) -> str:
    import yaml

    header = (
        "# Generated by `python -m functions.openapi > functions/openapi.yaml` from the models\n"
        "# that enforce it (functions/validation.py, potability/features.py). Do not edit.\n"
    )

    class NoAliases(yaml.SafeDumper):
        """Shared sub-documents written out each time: PyYAML's anchors (``&id001``) are valid
        YAML, but tools and readers of an OpenAPI document expect plain objects."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return header + yaml.dump(
        document or build_document(),
        Dumper=NoAliases,
        sort_keys=False,
        allow_unicode=False,
        width=100,
    )


if __name__ == "__main__":
    print(render(), end="")
