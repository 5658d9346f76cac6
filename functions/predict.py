"""The inference function: validate, ask the endpoint, log every inference, then answer.

    POST {"sensor_id": "plant-7", "readings": [{"ph": 7.1, ..., "Turbidity": 3.9}, ...]}
    ->   {"request_id": "...", "sensor_id": "plant-7", "model_name": "water-potability",
          "predictions": [{"reading_index": 0, "potable": 1, "probability": 0.81,
                           "model_version": "3", "request_id": "..."}, ...]}

Ordering is what makes it safe: the endpoint call, then the insert of all readings in ONE
statement (``water.log_inferences``, sql/008) that commits as it completes, and the answer is
sent only after that, so every answer a sensor saw is in ``water.water_inferences`` and a
failure anywhere (endpoint, database) leaves nothing written. The database costs one round
trip per request, with or without a client id. ``latency_ms`` records how long the endpoint
took for the request the reading was part of.

Idempotency: the client's request id (``Idempotency-Key`` header or ``request_id`` field),
scoped to the caller, is a key in ``water.inference_requests`` (sql/008, unique per
``(caller, request_id)``), recognised for the idempotency window (``INFERENCE_REQUEST_KEY_DAYS``,
default 7 days; then maintenance prunes it). The insert claims the key (``INSERT ... ON
CONFLICT DO NOTHING RETURNING``) and inserts the readings in the same statement, so a request's
rows are inserted all or nothing, and it says whether the key was new. Only when it was not (a
retry, a duplicate in flight, a reused key) are the logged rows read back: the same readings get
the logged answer (``Idempotent-Replayed: true``, nothing written), other readings a 409 that
adds no row. The key is not looked up before the endpoint call (issue 34: that lookup was ~18%
of a request's time, for the rare retry): a retry costs one scoring whose result is discarded,
and if the endpoint cannot answer a retry, the log is read then - a logged request still gets
its answer while the endpoint is down.
"""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import flask
import orjson

from functions.callers import predict_caller
from functions.context import Call, Context, retry_stale_connection
from functions.endpoint import EndpointRejected, EndpointUnavailable, Prediction
from functions.http import ApiError, json_response, read_json_body, require_method
from functions.validation import Features, PredictRequest, parse_predict
from potability import db
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES

FUNCTION = "predict"
REPLAY_HEADER = "Idempotent-Replayed"

INSERT_SQL = (
    "SELECT count(*) FROM water.log_inferences(:caller, :request_id, :sensor_id, :model_name, "
    ":endpoint, :latency_ms, CAST(:rows AS json))"
)
"""The key and all readings of a request in one short statement (``sql/008``): the rows
travel as one JSON array (floats exact: shortest round-trip repr both ways), and it answers
how many readings it inserted (all, or none = the key was taken already): one row back, where
the function's own set of reading indexes cost pg8000 a row each to decode. Run on
its own (:meth:`potability.db.Pool.run`), it commits as it completes: the one statement of a
request without a client id."""
SELECT_LOGGED = (
    "SELECT reading_index, sensor_id, "
    + ", ".join(FEATURE_COLUMNS)
    + ", predicted_class, probability, model_name, model_version, measured_at "
    "FROM water.logged_inferences(:caller, :request_id)"
)
"""The logged rows of a request key, in reading order: a retry's answer (the key's
``inferred_at`` finds them in one partition, whichever day the retry comes)."""


_RECORD_KEYS = (
    "reading_index",
    *FEATURE_COLUMNS,
    "predicted_class",
    "probability",
    "model_version",
    "measured_at",
)
"""The keys of a row :data:`INSERT_SQL` reads, in the order :func:`insert_params` fills them."""
_FEATURE_VALUES = operator.itemgetter(*FEATURE_NAMES)
"""A validated reading's nine values in :data:`FEATURE_NAMES` order (it has exactly those keys)."""


class Scored(Protocol):
    """What an answer says of one reading: a fresh prediction or a logged row."""

    @property
    def potable(self) -> int: ...
    @property
    def probability(self) -> float: ...
    @property
    def model_version(self) -> str: ...


@dataclass(frozen=True)
class LoggedInference:
    """One stored row of a request, enough to rebuild the answer and to compare readings."""

    reading_index: int
    sensor_id: str
    features: Features
    potable: int
    probability: float
    model_name: str
    model_version: str
    measured_at: datetime | None = None


def insert_params(
    caller: str,
    request_id: str,
    request: PredictRequest,
    predictions: Sequence[Prediction],
    model_name: str,
    endpoint: str,
    latency_ms: float,
) -> dict[str, Any]:
    """The parameters of :data:`INSERT_SQL`: the request's constants, then its rows as JSON.

    Each row is built straight from the reading and its prediction (one ``zip`` into a dict;
    issue 34: building a :class:`LoggedInference` per reading first, then a row from it, was
    a tenth of a batch's time in the function)."""
    records = [
        dict(
            zip(
                _RECORD_KEYS,
                (
                    i,
                    *_FEATURE_VALUES(reading),
                    p.potable,
                    p.probability,
                    p.model_version,
                    None if (stamp := request.measured(i)) is None else stamp.isoformat(),
                ),
                strict=True,
            )
        )
        for i, (reading, p) in enumerate(zip(request.readings, predictions, strict=True))
    ]
    return {
        "caller": caller,
        "request_id": request_id,
        "sensor_id": request.sensor_id,
        "model_name": model_name,
        "endpoint": endpoint,
        "latency_ms": latency_ms,
        # orjson: a sixth of json's time for a batch's ~1,100 floats, the same shortest
        # round-trip text; every float here was checked finite (validation, parse_predictions)
        "rows": orjson.dumps(records).decode(),
    }


def load_logged(pool: db.Pool, caller: str, request_id: str) -> list[LoggedInference]:
    """The rows logged under the key ``(caller, request_id)`` (none: a new request)."""
    width = len(FEATURE_NAMES)
    return [
        LoggedInference(
            reading_index=row[0],
            sensor_id=row[1],
            features=dict(zip(FEATURE_NAMES, row[2 : 2 + width], strict=False)),
            potable=int(row[2 + width]),
            probability=float(row[3 + width]),
            model_name=row[4 + width],
            model_version=row[5 + width],
            measured_at=row[6 + width],
        )
        for row in pool.run(SELECT_LOGGED, caller=caller, request_id=request_id)
    ]


def same_request(logged: Sequence[LoggedInference], request: PredictRequest) -> bool:
    """Whether the logged rows are exactly this request's readings (same sensor, same values)."""
    return (
        len(logged) == len(request.readings)
        and all(row.reading_index == i for i, row in enumerate(logged))
        and all(row.sensor_id == request.sensor_id for row in logged)
        and all(
            row.features == reading for row, reading in zip(logged, request.readings, strict=False)
        )
        and all(row.measured_at == request.measured(i) for i, row in enumerate(logged))
    )


def answer(
    request_id: str, sensor_id: str, model_name: str, scored: Sequence[Scored]
) -> dict[str, Any]:
    """The response body, reading by reading in order: from the predictions that are logged
    with it, or from the logged rows of a replay - the same body either way."""
    return {
        "request_id": request_id,
        "sensor_id": sensor_id,
        "model_name": model_name,
        "predictions": [
            {
                "reading_index": i,
                "potable": r.potable,
                "probability": r.probability,
                "model_version": r.model_version,
                "request_id": request_id,
            }
            for i, r in enumerate(scored)
        ],
    }


def _replay(
    request_id: str, request: PredictRequest, logged: list[LoggedInference], call: Call
) -> flask.Response:
    if not same_request(logged, request):
        raise ApiError(409, "request_id", "this request id was already used for different readings")
    call.log["replayed"] = True
    body = answer(request_id, request.sensor_id, logged[0].model_name, logged)
    return json_response(body, 200, {REPLAY_HEADER: "true"})


def handle(request: flask.Request, ctx: Context, call: Call) -> flask.Response:
    require_method(request, "POST")
    caller = predict_caller(request.headers, ctx.settings, ctx.google_certs)
    call.log["caller"] = caller.identity
    body = read_json_body(request, ctx.settings.max_body_bytes)
    parsed = parse_predict(
        body, request.headers.get("Idempotency-Key"), ctx.settings.predict_max_readings
    )
    caller.require_sensor(parsed.sensor_id)
    request_id = parsed.request_id or str(uuid.uuid4())
    call.request_id = request_id
    call.log.update(sensor_id=parsed.sensor_id, readings=len(parsed.readings))
    return retry_stale_connection(
        lambda: _infer_and_log(ctx, parsed, request_id, call, caller.identity)
    )


def _infer_and_log(
    ctx: Context, parsed: PredictRequest, request_id: str, call: Call, caller: str
) -> flask.Response:
    """Ask the endpoint, log (claiming the key); the answer exists only once committed.

    No transaction spans the endpoint call: the insert is a single statement committed on its
    own (one round trip, :meth:`potability.db.Pool.run`), the only write - atomic for the key
    and all readings, idempotent by ``(caller, request_id)``. The log is read only when the key
    was taken already, or when the endpoint failed a request that carries a client id (it may
    be a retry of a logged request, answered from the log). ``caller`` scopes the key: two
    callers may use the same request id.
    """
    endpoint = ctx.endpoint
    model_name = ctx.settings.model_name
    started = time.perf_counter()
    try:
        predictions = endpoint.predict(parsed.readings)
    except (EndpointUnavailable, EndpointRejected):
        logged = load_logged(ctx.pool, caller, request_id) if parsed.request_id else []
        if logged:
            return _replay(request_id, parsed, logged, call)
        raise
    latency_ms = (time.perf_counter() - started) * 1000.0
    call.log["endpoint_ms"] = round(latency_ms, 3)
    ((inserted,),) = ctx.pool.run(
        INSERT_SQL,
        **insert_params(
            caller, request_id, parsed, predictions, model_name, endpoint.name, latency_ms
        ),
    )
    if inserted != len(predictions):
        # The id was logged meanwhile (a concurrent duplicate, or our own first attempt whose
        # commit landed before the connection broke): answer what is logged.
        return _replay(request_id, parsed, load_logged(ctx.pool, caller, request_id), call)
    return json_response(answer(request_id, parsed.sensor_id, model_name, predictions), 200)
