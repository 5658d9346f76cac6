"""Request bodies of the functions, validated into plain values (pure: no I/O).

The shapes are published in ``functions/openapi.yaml`` (generated from ``functions/openapi.py``,
which reads the limits and patterns from here), and every measurement goes through
:func:`potability.features.validate_features`, so the API, the model server and the database
CHECKs agree on what a reading is. Each refusal raises :class:`functions.http.ApiError` with
the exact field, e.g. ``readings[3].ph``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.http import ApiError
from potability.features import FEATURE_NAMES, TARGET, ValidationError, validate_features

TEXT_MAX = 128
"""Longest sensor, sample and request id (the database CHECKs say the same)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""Request and sample ids: safe in logs and URLs, like UUIDs or lab references."""
SENSOR_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$"
"""Sensor ids: any printable text (site names), no control characters."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a ``sampled_at`` may be (clocks of lab systems drift)."""
EARLIEST_SAMPLE = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

PREDICT_FIELDS = frozenset({"sensor_id", "request_id", "reading", "readings"})
SAMPLE_FIELDS = frozenset(FEATURE_NAMES) | {TARGET, "sample_id", "sampled_at", "sensor_id"}
_ID_RE = re.compile(ID_PATTERN)

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


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, field, "must be a JSON object")
    return value


def _no_unknown(body: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        if not unknown[0]:  # an empty key: name the object that holds it
            raise ApiError(400, prefix.rstrip(".") or "body", "unknown field ''")
        raise ApiError(400, f"{prefix}{unknown[0]}", "unknown field")


def check_text(value: Any, field: str) -> str:
    """A free-text id: 1..128 characters, printable, encodable (no lone surrogates), and no
    format characters (category Cf: bidi overrides such as U+202E, zero-width spaces), which
    would make one id display as another on the status page and in the logs."""
    if not isinstance(value, str):
        raise ApiError(400, field, "must be a string")
    if not 1 <= len(value) <= TEXT_MAX:
        raise ApiError(400, field, f"must be 1 to {TEXT_MAX} characters")
    if any(unicodedata.category(c) in {"Cc", "Cs", "Cf"} for c in value):
        raise ApiError(
            400,
            field,
            "must not contain control or format characters (bidi overrides, zero-width) "
            "or lone surrogates",
        )
    return value


def check_id(value: Any, field: str) -> str:
    """A request or sample id: letters, digits and ``. _ : -``, 1..128 characters."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ApiError(
            400,
            field,
            "must be 1 to 128 characters of letters, digits and . _ : - "
            "(starting with a letter or digit)",
        )
    return value


def _features(record: Any, where: str, allow_extra: frozenset[str] = frozenset()) -> Features:
    _object(record, where.rstrip(".") or "body")
    try:
        return validate_features(record, where=where, allow_extra=allow_extra)
    except ValidationError as exc:
        raise ApiError(400, exc.field, exc.message) from None


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, field, "must be a JSON array")
    if not value:
        raise ApiError(400, field, "must not be empty")
    if len(value) > limit:
        raise ApiError(413, field, f"at most {limit} items per request")
    return value


READING_EXTRA = frozenset({"measured_at"})
"""What a reading may carry besides the nine measurements."""


def _reading(record: Any, where: str, now: datetime) -> tuple[Features, datetime | None]:
    features = _features(record, where, allow_extra=READING_EXTRA)
    stamp = record.get("measured_at")
    return features, (None if stamp is None else parse_timestamp(stamp, f"{where}measured_at", now))


def parse_predict(
    body: Any, idempotency_key: str | None, max_readings: int, now: datetime | None = None
) -> PredictRequest:
    """``{"sensor_id", "reading": {...}}`` or ``{"sensor_id", "readings": [...]}``.

    The client's request id (``Idempotency-Key`` header or ``request_id`` field; both must
    agree when both are sent) makes retries safe.
    """
    body = _object(body, "body")
    _no_unknown(body, PREDICT_FIELDS)
    if "sensor_id" not in body:
        raise ApiError(400, "sensor_id", "is required")
    sensor_id = check_text(body["sensor_id"], "sensor_id")
    request_id = None
    if "request_id" in body:
        request_id = check_id(body["request_id"], "request_id")
    if idempotency_key is not None:
        key = check_id(idempotency_key, "Idempotency-Key")
        if request_id is not None and key != request_id:
            raise ApiError(400, "request_id", "differs from the Idempotency-Key header")
        request_id = key
    if ("reading" in body) == ("readings" in body):
        raise ApiError(400, "readings", "send exactly one of 'reading' or 'readings'")
    now = now or datetime.now(UTC)
    if "reading" in body:
        parsed = [_reading(body["reading"], "reading.", now)]
    else:
        items = _list(body["readings"], "readings", max_readings)
        parsed = [_reading(r, f"readings[{i}].", now) for i, r in enumerate(items)]
    stamps = tuple(stamp for _, stamp in parsed)
    return PredictRequest(
        sensor_id,
        tuple(features for features, _ in parsed),
        request_id,
        stamps if any(stamp is not None for stamp in stamps) else (),
    )


def parse_timestamp(value: Any, field: str, now: datetime) -> datetime:
    """An RFC 3339 timestamp with an offset, not before 1970 nor in the future (+5 min skew);
    ``sampled_at`` of a lab sample and ``measured_at`` of a reading."""
    if not isinstance(value, str):
        raise ApiError(400, field, "must be an RFC 3339 date-time string")
    match = RFC3339.fullmatch(value)
    if not match:
        raise ApiError(
            400, field, "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T09:30:00Z"
        )
    fraction = (match.group(7) or "")[:7]  # microseconds: Python keeps 6 digits
    text = value[: match.start(7)] if match.group(7) else value[: match.start(8)]
    offset = match.group(8).upper().replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(f"{text}{fraction}{offset}".replace("t", "T"))
        utc = stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, field, "is not a valid date-time") from None
    if utc < EARLIEST_SAMPLE:
        raise ApiError(400, field, "must not be before 1970-01-01")
    if utc > now + CLOCK_SKEW:
        raise ApiError(400, field, "is in the future")
    return utc


def parse_sample(record: Any, where: str, now: datetime) -> Sample:
    record = _object(record, where.rstrip(".") or "body")
    _no_unknown(record, SAMPLE_FIELDS, where)
    for name in ("sample_id", TARGET, "sampled_at"):
        if name not in record:
            raise ApiError(400, f"{where}{name}", "is required")
    sample_id = check_id(record["sample_id"], f"{where}sample_id")
    features = _features(record, where, allow_extra=SAMPLE_FIELDS - set(FEATURE_NAMES))
    label = record[TARGET]
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
        raise ApiError(400, f"{where}{TARGET}", "must be the integer 0 or 1")
    sampled_at = parse_timestamp(record["sampled_at"], f"{where}sampled_at", now)
    sensor_id = record.get("sensor_id")
    if sensor_id is not None:
        sensor_id = check_text(sensor_id, f"{where}sensor_id")
    return Sample(sample_id, features, int(label), sampled_at, sensor_id)


def parse_samples(body: Any, max_batch: int, now: datetime) -> list[Sample]:
    """One sample object, or ``{"samples": [...]}``; sample ids must be unique in a batch."""
    body = _object(body, "body")
    if "samples" in body:
        _no_unknown(body, frozenset({"samples"}))
        items = _list(body["samples"], "samples", max_batch)
        samples = [parse_sample(r, f"samples[{i}].", now) for i, r in enumerate(items)]
    else:
        samples = [parse_sample(body, "", now)]
    seen: dict[str, int] = {}
    for i, sample in enumerate(samples):
        if sample.sample_id in seen:
            raise ApiError(
                400,
                f"samples[{i}].sample_id",
                f"repeats samples[{seen[sample.sample_id]}].sample_id",
            )
        seen[sample.sample_id] = i
    return samples
