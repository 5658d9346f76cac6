"""The samples function: authorised regulators add certified lab samples to the training table.

    POST (Authorization: Bearer ...)
         {"sample_id": "lab-2024-0001", "sampled_at": "2024-05-01T09:30:00Z",
          "sensor_id": "plant-7", "potability": 1, "ph": 7.1, ..., "Turbidity": 3.9}
      or {"samples": [{...}, ...]}
    ->   201 {"recorded": 1, "already_recorded": 0, "samples": [{"sample_id", "status"}], ...}

A batch is inserted all or nothing, in one transaction. The sample id makes retries safe: a
sample already stored with identical values is reported ``already recorded`` (200, nothing
written again); the same id with different values is a 409 and the whole batch is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import flask

from functions.auth import authorise_samples
from functions.context import Call, Context, retry_stale_connection
from functions.http import ApiError, json_response, read_json_body, require_method
from functions.validation import Sample, parse_samples
from potability import db
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, TARGET

FUNCTION = "add_sample"
RECORDED = "recorded"
ALREADY_RECORDED = "already recorded"

_COLUMNS = (
    "sample_id",
    *FEATURE_COLUMNS,
    TARGET,
    "sensor_id",
    "sampled_at",
    "submitted_by",
    "source",
)
_ROW_SQL = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"


def insert_sql(rows: int) -> str:
    return (
        f"INSERT INTO water.water_potability ({', '.join(_COLUMNS)}) VALUES "
        + ", ".join([_ROW_SQL] * rows)
        + " ON CONFLICT (sample_id) DO NOTHING RETURNING sample_id"
    )


def row_values(samples: Sequence[Sample], submitted_by: str) -> list[Any]:
    values: list[Any] = []
    for s in samples:
        values += [
            s.sample_id,
            *(s.features[n] for n in FEATURE_NAMES),
            s.potability,
            s.sensor_id,
            s.sampled_at,
            submitted_by,
            "lab",
        ]
    return values


def stored_matches(row: Sequence[Any], sample: Sample) -> bool:
    """Whether a stored row (features, potability, sensor_id, sampled_at, source) is ``sample``."""
    width = len(FEATURE_NAMES)
    features = dict(zip(FEATURE_NAMES, row[:width], strict=False))
    potability, sensor_id, sampled_at, source = row[width : width + 4]
    return (
        source == "lab"
        and features == sample.features
        and int(potability) == sample.potability
        and sensor_id == sample.sensor_id
        and sampled_at is not None
        and sampled_at.astimezone(UTC) == sample.sampled_at
    )


def _check_existing(
    conn: db.Connection,
    samples: Sequence[Sample],
    inserted: set[str],
    positions: dict[str, int],
    prefix: Callable[[int], str],
    submitted_by: str,
) -> None:
    """Refuse the batch if an id it did not insert is another sample: one recorded with other
    values, or one of another submitter. Another submitter's sample is never compared (the
    answer would confirm its values), only reported taken."""
    existing = [s for s in samples if s.sample_id not in inserted]
    if not existing:
        return
    cur = conn.cursor()
    cur.execute(
        f"SELECT sample_id, submitted_by, {', '.join(FEATURE_COLUMNS)}, {TARGET}, sensor_id, "
        "sampled_at, source FROM water.water_potability WHERE sample_id = ANY(%s)",
        ([s.sample_id for s in existing],),
    )
    stored = {row[0]: row[1:] for row in cur.fetchall()}
    for sample in existing:
        row = stored.get(sample.sample_id)
        if row is not None and row[0] != submitted_by:
            raise ApiError(
                409,
                f"{prefix(positions[sample.sample_id])}sample_id",
                "this sample id is already used by another submitter; choose another id",
            )
        if row is None or not stored_matches(row[1:], sample):
            raise ApiError(
                409,
                f"{prefix(positions[sample.sample_id])}sample_id",
                "a different sample with this id is already recorded",
            )


def handle(request: flask.Request, ctx: Context, call: Call) -> flask.Response:
    require_method(request, "POST")
    submitted_by = authorise_samples(
        request.headers, ctx.settings, ctx.google_certs, ctx.regulator_hashes.current()
    )
    call.log["submitted_by"] = submitted_by
    body = read_json_body(request, ctx.settings.max_body_bytes)
    samples = parse_samples(body, ctx.settings.samples_max_batch, datetime.now(UTC))
    batch = isinstance(body, dict) and "samples" in body
    call.log["samples"] = len(samples)
    positions = {s.sample_id: i for i, s in enumerate(samples)}

    def prefix(i: int) -> str:
        return f"samples[{i}]." if batch else ""

    def record() -> set[str]:
        with ctx.pool.transaction() as conn:
            cur = conn.cursor()
            # who, for the training table's audit history (sql/011), this transaction only
            cur.execute("SELECT set_config('potability.submitter', %s, true)", (submitted_by,))
            cur.execute(insert_sql(len(samples)), row_values(samples, submitted_by))
            inserted = {row[0] for row in cur.fetchall()}
            _check_existing(conn, samples, inserted, positions, prefix, submitted_by)
        return inserted

    inserted = retry_stale_connection(record)

    statuses = [
        {
            "sample_id": s.sample_id,
            "status": RECORDED if s.sample_id in inserted else ALREADY_RECORDED,
        }
        for s in samples
    ]
    new = len(inserted)
    body_out = {
        "message": ALREADY_RECORDED if new == 0 else RECORDED,
        "recorded": new,
        "already_recorded": len(samples) - new,
        "submitted_by": submitted_by,
        "samples": statuses,
    }
    call.log.update(recorded=new, already_recorded=len(samples) - new)
    return json_response(body_out, 201 if new == len(samples) else 200)
