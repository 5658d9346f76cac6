"""Request bodies of the functions as pydantic models, validated into plain values (pure).

The models are generated from :mod:`potability.features` (names, units, ranges: defined there
once), and their JSON schema *is* the published one (``functions/openapi.py``), so the API,
the document, the model server and the database CHECKs agree on what a reading is. The models
are ``TypedDict`` s: pydantic's Rust core checks them and hands back plain dicts, no model
objects to convert per reading (https://docs.pydantic.dev/latest/concepts/types/#typeddict).

A refusal lists *every* field at fault at once (:class:`functions.http.ApiError` ``errors``,
answered as the problem's ``errors[]``), ordered as the former hand-written validator walked
the body - an object's unknown fields first, then its missing ones, then wrong values in
document order - so the first, which stays in ``field`` / ``error``, is the one it reported.
Each message is ours (:func:`_message`), not pydantic's, e.g. ``readings[3].ph``: ``15 pH is
outside the valid range [0, 14]``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn, NotRequired

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from functions.http import ApiError
from potability.features import FEATURE_NAMES, FEATURES, FEATURES_BY_NAME, TARGET

TEXT_MAX = 128
"""Longest sensor, sample and request id (the database CHECKs say the same)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""Request and sample ids: safe in logs and URLs, like UUIDs or lab references."""
SENSOR_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$"
"""Sensor ids: any printable text (site names), no control characters (the document's
pattern; format characters are refused as well, which a JSON Schema pattern cannot say)."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a ``sampled_at`` may be (clocks of lab systems drift)."""
EARLIEST_SAMPLE = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_ID_RE = re.compile(ID_PATTERN)
ERRORS_MAX = 100
"""Most errors one refusal lists (a 100-reading batch can have a thousand): the answer stays
a few tens of kilobytes whatever the body; ``errors_omitted`` counts the rest."""

Features = dict[str, float | None]


@dataclass(frozen=True)
class PredictRequest:
    """A validated inference request: who measured, what, and the client's id if it sent one."""

    sensor_id: str
    readings: tuple[Features, ...]
    request_id: str | None
    measured_at: tuple[datetime | None, ...] = ()
    """Per reading, when the sensor measured it (``measured_at``; None: not sent, the arrival
    time stands in). Quality control matches lab samples on it
    (potability/quality/live_precision.py)."""

    def measured(self, index: int) -> datetime | None:
        return self.measured_at[index] if self.measured_at else None


@dataclass(frozen=True)
class Sample:
    """A validated certified lab sample (one future training row)."""

    sample_id: str
    features: Features
    potability: int
    sampled_at: datetime
    sensor_id: str | None


# --- field types: each rule once, with its message -----------------------------------------

TEXT_MESSAGE = (
    "must not contain control or format characters (bidi overrides, zero-width) or lone surrogates"
)
ID_MESSAGE = (
    "must be 1 to 128 characters of letters, digits and . _ : - (starting with a letter or digit)"
)
LABEL_MESSAGE = "must be the integer 0 or 1"
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cf"})


def _text(value: str) -> str:
    """A free-text id: 1..128 characters, printable, encodable (no lone surrogates), and no
    format characters (category Cf: bidi overrides such as U+202E, zero-width spaces), which
    would make one id display as another on the status page and in the logs."""
    if not 1 <= len(value) <= TEXT_MAX:
        raise PydanticCustomError("text_length", f"must be 1 to {TEXT_MAX} characters")
    if not value.isprintable() and any(
        unicodedata.category(c) in _REFUSED_CATEGORIES for c in value
    ):
        raise PydanticCustomError("text_characters", TEXT_MESSAGE)
    return value


def timestamp(value: Any, now: datetime) -> datetime:
    """An RFC 3339 timestamp with an offset, as UTC, not before 1970 nor in the future (+5 min
    skew); ``sampled_at`` of a lab sample and ``measured_at`` of a reading."""
    if not isinstance(value, str):
        raise PydanticCustomError("timestamp", "must be an RFC 3339 date-time string")
    match = RFC3339.fullmatch(value)
    if not match:
        raise PydanticCustomError(
            "timestamp",
            "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T09:30:00Z",
        )
    fraction = (match.group(7) or "")[:7]  # microseconds: Python keeps 6 digits
    text = value[: match.start(7)] if match.group(7) else value[: match.start(8)]
    offset = match.group(8).upper().replace("Z", "+00:00")
    try:
        utc = datetime.fromisoformat(f"{text}{fraction}{offset}".replace("t", "T")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("timestamp", "is not a valid date-time") from None
    if utc < EARLIEST_SAMPLE:
        raise PydanticCustomError("timestamp", "must not be before 1970-01-01")
    if utc > now + CLOCK_SKEW:
        raise PydanticCustomError("timestamp", "is in the future")
    return utc


def parse_timestamp(value: Any, field: str, now: datetime) -> datetime:
    """:func:`timestamp`, refused as an :class:`ApiError` naming ``field``."""
    try:
        return timestamp(value, now)
    except PydanticCustomError as exc:
        raise ApiError(400, field, exc.message()) from None


def _timestamp_field(value: Any, info: ValidationInfo) -> datetime:
    now = info.context["now"] if info.context else datetime.now(UTC)
    return timestamp(value, now)


SensorId = Annotated[
    str,
    Field(
        strict=True,
        description="Sensor or site id: printable text, no format characters.",
        json_schema_extra={"minLength": 1, "maxLength": TEXT_MAX, "pattern": SENSOR_PATTERN},
    ),
    AfterValidator(_text),
]
Id = Annotated[str, Field(strict=True, min_length=1, max_length=TEXT_MAX, pattern=ID_PATTERN)]
Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp_field),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _measurement(feature: Any) -> Any:
    """A measurement: a finite number (an integer or a float, never a boolean or a string) in
    the feature's range, or null when it was not measured."""
    return Annotated[
        float | None,
        Field(
            strict=True,
            ge=feature.minimum,
            le=feature.maximum,
            allow_inf_nan=False,
            description=f"{feature.description} ({feature.unit})",
        ),
    ]


_MEASUREMENTS = {f.name: _measurement(f) for f in FEATURES}


_typed_dict: Any = TypedDict  # called with built field lists, which type checkers cannot read


def _model(name: str, fields: dict[str, Any], description: str, **schema: Any) -> Any:
    """A ``TypedDict`` named ``name`` (its name in the document) with ``fields``, unknown keys
    refused, ``description`` (and any other ``schema`` members) in its JSON schema."""
    model = _typed_dict(name, fields)
    model.__pydantic_config__ = ConfigDict(
        extra="forbid", json_schema_extra={"description": description, **schema}
    )
    return model


Reading = _model(
    "Reading",
    {
        **_MEASUREMENTS,
        "measured_at": NotRequired[
            Annotated[
                Timestamp | None,
                Field(
                    description=(
                        "When the sensor measured this reading: RFC 3339 with a time zone, "
                        "not before 1970 and not more than 5 minutes in the future. Absent or "
                        "null: the arrival time stands in. Quality control matches lab samples "
                        "to readings on it, so a batch of readings taken over an hour is "
                        "matched reading by reading."
                    )
                ),
            ]
        ],
    },
    "One reading: exactly the nine measurements, each a number in its range or null when not "
    "measured, and optionally when it was measured. Unknown fields are refused.",
)

SampleBody = _model(
    "Sample",
    {
        **_MEASUREMENTS,
        TARGET: Annotated[
            int,
            Field(
                strict=True,
                ge=0,
                le=1,
                json_schema_extra={"enum": [0, 1]},
                description="Lab verdict: 1 potable, 0 not potable (an integer, not a boolean).",
            ),
        ],
        "sample_id": Id,
        "sampled_at": Annotated[
            Timestamp,
            Field(
                description="When the sample was taken: RFC 3339 with a time zone, not before "
                "1970 and not more than 5 minutes in the future."
            ),
        ],
        "sensor_id": NotRequired[
            Annotated[
                SensorId | None,
                Field(
                    description="Sensor/site the sample was taken at (quality control compares "
                    "it with that sensor's inferences)."
                ),
            ]
        ],
    },
    "One certified lab sample: the nine measurements (null = not measured), the lab's verdict "
    "and where/when it was taken.",
)


@functools.cache
def predict_adapter(max_readings: int) -> TypeAdapter[Any]:
    """The predict body's model for a batch limit (``PREDICT_MAX_READINGS``), built once."""
    body = _model(
        "PredictRequest",
        {
            "sensor_id": SensorId,
            "request_id": NotRequired[Id],
            "reading": NotRequired[Reading],
            "readings": NotRequired[
                Annotated[
                    list[Reading],  # type: ignore[valid-type]  # built by _model
                    Field(min_length=1, max_length=max_readings),
                ]
            ],
        },
        f"A single reading (`reading`) or a batch (`readings`, at most {max_readings}). "
        "`request_id` (or the Idempotency-Key header; if both are sent they must be equal) "
        "makes retries safe: the key is recognised for the idempotency window "
        "(INFERENCE_REQUEST_KEY_DAYS) and is scoped to the caller.",
        oneOf=[{"required": ["reading"]}, {"required": ["readings"]}],
    )
    return TypeAdapter(body)


@functools.cache
def samples_adapters(max_batch: int) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    """add_sample's two bodies, one sample and ``{"samples": [...]}`` (``SAMPLES_MAX_BATCH``)."""
    batch = _model(
        "SamplesBatch",
        {
            "samples": Annotated[
                list[SampleBody],  # type: ignore[valid-type]  # built by _model
                Field(min_length=1, max_length=max_batch),
            ]
        },
        f"Up to {max_batch} samples, recorded all or nothing.",
    )
    return TypeAdapter(SampleBody), TypeAdapter(batch)


# --- pydantic's errors as ours ---------------------------------------------------------------

_OBJECT_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type"})
_FIELD_MESSAGES = {"request_id": ID_MESSAGE, "sample_id": ID_MESSAGE, TARGET: LABEL_MESSAGE}
"""Fields whose every refusal (but absence) says the same: the rule, whatever pydantic found."""


def _field(loc: Sequence[int | str]) -> str:
    """``("readings", 3, "ph")`` -> ``readings[3].ph``; ``()`` -> ``body``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "body"


def _message(error: Any) -> tuple[int, str]:
    """The status and our message for one of pydantic's errors."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return 400, "unknown field" if name else "unknown field ''"
    if kind == "missing":
        if name in FEATURES_BY_NAME:
            return 400, "is required (send null for a missing measurement)"
        return 400, "is required"
    if kind in _OBJECT_ERRORS:
        return 400, "must be a JSON object"
    if kind == "list_type":
        return 400, "must be a JSON array"
    if kind == "too_short" and isinstance(value, list):
        return 400, "must not be empty"
    if kind == "too_long" and isinstance(value, list):
        return 413, f"at most {error['ctx']['max_length']} items per request"
    if kind.startswith("text_") or kind == "timestamp":
        return 400, str(error["msg"])
    if name in _FIELD_MESSAGES:
        return 400, _FIELD_MESSAGES[name]
    feature = FEATURES_BY_NAME.get(name) if isinstance(name, str) else None
    if feature is not None:
        if kind == "float_type":
            return 400, f"must be a number or null, got {type(value).__name__}"
        if kind == "finite_number":
            return 400, "must be finite (use null for a missing value)"
        if kind in ("greater_than_equal", "less_than_equal"):
            return 400, (
                f"{float(value):g} {feature.unit} is outside the valid range "
                f"[{feature.minimum:g}, {feature.maximum:g}]"
            )
    if kind == "string_type":
        return 400, "must be a string"
    return 400, str(error["msg"])


_POSITIONS = {
    name: i
    for i, name in enumerate(
        ("sensor_id", "request_id", "reading", "readings", "samples", "sample_id", TARGET)
        + ("sampled_at", *FEATURE_NAMES, "measured_at")
    )
}
_RANK = {"extra_forbidden": 0, "missing": 1}


def _order(error: Any) -> tuple[tuple[int, int, str], ...]:
    """Where an error sorts: per level of its location, unknown fields, then missing ones,
    then the rest, each in the order of the document (list items by index)."""
    loc, rank = error["loc"], _RANK.get(error["type"], 2)
    last = len(loc) - 1
    return tuple(
        (rank if i == last else 2, part, "")
        if isinstance(part, int)
        else (rank if i == last else 2, _POSITIONS.get(part, -1), part)
        for i, part in enumerate(loc)
    )


def _described(error: Any) -> tuple[int, str, str]:
    """(status, field, message) of one of pydantic's errors."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and loc and loc[-1] == "":
        loc = loc[:-1]  # an empty key: name the object that holds it
    status, message = _message(error)
    return status, _field(loc), message


class _Found:
    """The errors of one request, gathered in order; :meth:`raise_any` refuses it. pydantic's
    are described only when listed (at most :data:`ERRORS_MAX` of a body's thousands)."""

    def __init__(self) -> None:
        self.errors: list[tuple[tuple[tuple[int, int, str], ...], Any]] = []

    def add(
        self, loc: Sequence[int | str], status: int, message: str, field: str | None = None
    ) -> None:
        """One of our own errors, at ``loc`` in the body (``field``: a name outside it)."""
        self.errors.append(
            (_order({"loc": loc, "type": ""}), (status, field or _field(loc), message))
        )

    def add_pydantic(self, exc: PydanticError) -> None:
        self.errors.extend((_order(error), error) for error in exc.errors(include_url=False))

    def raise_any(self) -> None:
        if not self.errors:
            return
        found = [item for _, item in sorted(self.errors, key=lambda e: e[0])]
        # a batch over its limit leads (413): shrink it first; its items were not validated
        found.sort(key=lambda item: not (isinstance(item, dict) and item["type"] == "too_long"))
        listed = [
            item if isinstance(item, tuple) else _described(item) for item in found[:ERRORS_MAX]
        ]
        status, field, message = listed[0]
        raise ApiError(
            status,
            field,
            message,
            errors=[(f, m) for _, f, m in listed],
            omitted=max(0, len(found) - ERRORS_MAX),
        )


def _validate(adapter: TypeAdapter[Any], body: Any, now: datetime | None, found: _Found) -> Any:
    try:
        return adapter.validate_python(body, context=None if now is None else {"now": now})
    except PydanticError as exc:
        found.add_pydantic(exc)
        return None


# --- the bodies ----------------------------------------------------------------------------


def parse_predict(
    body: Any, idempotency_key: str | None, max_readings: int, now: datetime | None = None
) -> PredictRequest:
    """``{"sensor_id", "reading": {...}}`` or ``{"sensor_id", "readings": [...]}``.

    The client's request id (``Idempotency-Key`` header or ``request_id`` field; both must
    agree when both are sent) makes retries safe. A valid request costs one call into
    pydantic's core and a few lookups (bench/validation_bench.py); only a refusal gathers
    and orders errors (:func:`_refuse_predict`).
    """
    try:
        data = predict_adapter(max_readings).validate_python(
            body, context=None if now is None else {"now": now}
        )
    except PydanticError as exc:
        _refuse_predict(body, idempotency_key, exc)
    request_id = data.get("request_id")
    if ("reading" in data) == ("readings" in data) or (
        idempotency_key is not None
        and (
            not _ID_RE.fullmatch(idempotency_key)
            or (request_id is not None and idempotency_key != request_id)
        )
    ):
        _refuse_predict(body, idempotency_key, None)
    readings = [data["reading"]] if "reading" in data else data["readings"]
    stamps = tuple([r.pop("measured_at", None) for r in readings])
    return PredictRequest(
        data["sensor_id"],
        tuple(readings),
        idempotency_key or request_id,
        stamps if stamps.count(None) != len(stamps) else (),
    )


def _refuse_predict(body: Any, idempotency_key: str | None, exc: PydanticError | None) -> NoReturn:
    """Every error of a predict request at once: the model's, then what it cannot say - one
    of ``reading`` / ``readings``, and the ``Idempotency-Key`` header."""
    found = _Found()
    if exc is not None:
        found.add_pydantic(exc)
    if isinstance(body, dict) and ("reading" in body) == ("readings" in body):
        found.add(("readings",), 400, "send exactly one of 'reading' or 'readings'")
    if idempotency_key is not None:
        # what was sent, even when the rest of the body is refused: said with the other errors
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not _ID_RE.fullmatch(idempotency_key):
            found.add(("request_id",), 400, ID_MESSAGE, field="Idempotency-Key")
        elif isinstance(request_id, str) and idempotency_key != request_id:
            found.add(("request_id",), 400, "differs from the Idempotency-Key header")
    found.raise_any()
    raise AssertionError("a refused request with no error")  # unreachable: callers checked


def _sample(record: Any) -> Sample:
    return Sample(
        record["sample_id"],
        {name: record[name] for name in FEATURE_NAMES},
        record[TARGET],
        record["sampled_at"],
        record.get("sensor_id"),
    )


def _repeated_ids(items: Iterable[Any], found: _Found) -> None:
    """Sample ids must be unique in a batch (checked on what was sent: reported with the rest)."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        sample_id = item.get("sample_id") if isinstance(item, dict) else None
        if not isinstance(sample_id, str):
            continue
        if sample_id in seen:
            found.add(
                ("samples", i, "sample_id"), 400, f"repeats samples[{seen[sample_id]}].sample_id"
            )
        else:
            seen[sample_id] = i


def parse_samples(body: Any, max_batch: int, now: datetime | None = None) -> list[Sample]:
    """One sample object, or ``{"samples": [...]}``; sample ids must be unique in a batch."""
    one, batch = samples_adapters(max_batch)
    found = _Found()
    if isinstance(body, dict) and "samples" in body:
        data = _validate(batch, body, now, found)
        if isinstance(body["samples"], list) and len(body["samples"]) <= max_batch:
            _repeated_ids(body["samples"], found)
        found.raise_any()
        return [_sample(record) for record in data["samples"]]
    data = _validate(one, body, now, found)
    found.raise_any()
    return [_sample(data)]
