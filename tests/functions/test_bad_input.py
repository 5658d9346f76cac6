"""Every class of bad input -> a 4xx JSON error naming the field, never a 500, nothing written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fn_support import count, reading, sample

from functions.http import ApiError
from functions.validation import parse_timestamp

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def raw(
    client: Any,
    path: str,
    data: bytes | str,
    auth: dict[str, str],
    content_type: str = "application/json",
    method: str = "POST",
) -> Any:
    return client.open(path, method=method, data=data, content_type=content_type, headers=auth)


def predict_body(**changes: Any) -> dict[str, Any]:
    return {"sensor_id": "plant-7", "readings": [reading(), reading()], **changes}


PREDICT_CASES: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"sensor_id": "a", "readings": [', 400, "body"),
    ("not UTF-8", b'{"sensor_id": "\xff"}', 400, "body"),
    ("empty body", b"", 400, "body"),
    ("JSON array", b"[]", 400, "body"),
    ("JSON string", b'"hello"', 400, "body"),
    ("NaN literal", b'{"sensor_id": "a", "reading": {"ph": NaN}}', 400, "body"),
    ("Infinity literal", b'{"sensor_id": "a", "reading": {"ph": -Infinity}}', 400, "body"),
    ("duplicate key", b'{"sensor_id": "a", "sensor_id": "b"}', 400, "sensor_id"),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, 400, "body"),
    ("NaN string", predict_body(readings=[reading(), reading(ph="NaN")]), 400, "readings[1].ph"),
    (
        "Infinity string",
        predict_body(reading=reading(Solids="Infinity"), readings=None),
        400,
        "reading.Solids",
    ),
    ("number as string", predict_body(readings=[reading(ph="7.1")]), 400, "readings[0].ph"),
    (
        "boolean value",
        predict_body(readings=[reading(Turbidity=True)]),
        400,
        "readings[0].Turbidity",
    ),
    (
        "out of range",
        predict_body(readings=[reading(), reading(), reading(ph=14.5)]),
        400,
        "readings[2].ph",
    ),
    ("negative", predict_body(readings=[reading(Hardness=-1)]), 400, "readings[0].Hardness"),
    (
        "huge number",
        json.dumps({"sensor_id": "a", "reading": reading(ph=12345.0)})
        .encode()
        .replace(b"12345.0", b"1e400"),
        400,
        "reading.ph",
    ),
    (
        "huge integer",
        json.dumps({"sensor_id": "a", "reading": reading(ph=12345.0)})
        .encode()
        .replace(b"12345.0", b"9" * 5000),
        400,
        "reading.ph",
    ),
    (
        "missing feature",
        predict_body(readings=[{k: v for k, v in reading().items() if k != "Sulfate"}]),
        400,
        "readings[0].Sulfate",
    ),
    ("unknown feature", predict_body(readings=[reading(colour=1.0)]), 400, "readings[0].colour"),
    ("unknown field", predict_body(extra=1), 400, "extra"),
    ("reading not object", predict_body(readings=[reading(), [1, 2]]), 400, "readings[1]"),
    ("readings not array", predict_body(readings={"ph": 1}), 400, "readings"),
    ("empty batch", predict_body(readings=[]), 400, "readings"),
    ("no readings", {"sensor_id": "a"}, 400, "readings"),
    ("both shapes", predict_body(reading=reading()), 400, "readings"),
    ("no sensor", {"readings": [reading()]}, 400, "sensor_id"),
    ("sensor not string", predict_body(sensor_id=7), 400, "sensor_id"),
    ("sensor empty", predict_body(sensor_id=""), 400, "sensor_id"),
    ("sensor too long", predict_body(sensor_id="s" * 129), 400, "sensor_id"),
    ("sensor control char", predict_body(sensor_id="a\u0000b"), 400, "sensor_id"),
    ("sensor lone surrogate", b'{"sensor_id": "a\\ud800", "reading": {}}', 400, "sensor_id"),
    ("sensor bidi override", predict_body(sensor_id="plant-\u202e7-a"), 400, "sensor_id"),
    ("sensor zero-width space", predict_body(sensor_id="plant\u200b-7"), 400, "sensor_id"),
    ("request id with spaces", predict_body(request_id="a b"), 400, "request_id"),
    ("request id not string", predict_body(request_id=12), 400, "request_id"),
]


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if v is not None or k != "readings"}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_bad_input(client, clean_db, fn_settings, body, status, field) -> None:
    data = _encode(body)
    if len(data) > fn_settings.max_body_bytes:
        status, field = 413, "body"
    response = raw(client, "/predict", data, {})
    assert response.status_code == status, response.json
    assert response.json["field"] == field
    assert response.json["error"]
    assert count(clean_db, "water_inferences") == 0


def test_a_megabyte_key_is_not_echoed_back(client, clean_db, fn_settings) -> None:
    """An unknown key is named in the error, cut to 64 characters: a 1 MB key once came
    back whole in the answer (and in the request log line)."""
    key = "k" * (fn_settings.max_body_bytes // 2)
    response = raw(client, "/predict", json.dumps(predict_body(**{key: 1})).encode(), {})
    assert response.status_code == 400
    assert response.json["field"].startswith("kkk") and len(response.json["field"]) <= 64
    assert len(response.data) < 1000
    assert count(clean_db, "water_inferences") == 0


SAMPLE_CASES: list[tuple[str, Any, int, str]] = [
    ("potability bool", sample("s1", potability=True), 400, "potability"),
    ("potability 2", sample("s1", potability=2), 400, "potability"),
    ("potability float", sample("s1", potability=1.0), 400, "potability"),
    ("potability string", sample("s1", potability="1"), 400, "potability"),
    (
        "potability missing",
        {k: v for k, v in sample("s1").items() if k != "potability"},
        400,
        "potability",
    ),
    (
        "sample id missing",
        {k: v for k, v in sample("s1").items() if k != "sample_id"},
        400,
        "sample_id",
    ),
    ("sample id bad", sample("bad id!"), 400, "sample_id"),
    (
        "sampled_at missing",
        {k: v for k, v in sample("s1").items() if k != "sampled_at"},
        400,
        "sampled_at",
    ),
    ("sampled_at no zone", sample("s1", sampled_at="2024-05-01T09:30:00"), 400, "sampled_at"),
    ("sampled_at not a date", sample("s1", sampled_at="yesterday"), 400, "sampled_at"),
    ("sampled_at number", sample("s1", sampled_at=1714555800), 400, "sampled_at"),
    ("sampled_at month 13", sample("s1", sampled_at="2024-13-01T00:00:00Z"), 400, "sampled_at"),
    ("sampled_at future", sample("s1", sampled_at="2999-01-01T00:00:00Z"), 400, "sampled_at"),
    ("feature out of range", sample("s1", Chloramines=51), 400, "Chloramines"),
    ("unknown field", sample("s1", lab="x"), 400, "lab"),
    ("sensor control char", sample("s1", sensor_id="\n"), 400, "sensor_id"),
    ("empty batch", {"samples": []}, 400, "samples"),
    ("batch not array", {"samples": "x"}, 400, "samples"),
    ("batch extra field", {"samples": [sample("s1")], "x": 1}, 400, "x"),
    ("batch item bad", {"samples": [sample("s1"), 5]}, 400, "samples[1]"),
    ("batch too large", {"samples": [sample(f"s{i}") for i in range(51)]}, 413, "samples"),
    ("NaN string", {"samples": [sample("s1", ph="NaN")]}, 400, "samples[0].ph"),
    ("malformed JSON", b"{", 400, "body"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES]
)
def test_add_sample_bad_input(client, clean_db, auth, body, status, field) -> None:
    response = raw(client, "/add_sample", _encode(body), auth)
    assert response.status_code == status, response.json
    assert response.json["field"] == field
    assert count(clean_db, "water_potability") == 0


@pytest.mark.parametrize("path", ["/predict", "/add_sample"])
def test_wrong_content_type_method_and_size(client, clean_db, auth, fn_settings, path) -> None:
    body = json.dumps(predict_body()).encode()
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ):
        response = raw(client, path, body, auth, content_type=content_type)
        assert response.status_code == 415
        assert response.json["field"] == "Content-Type"
    response = client.get(path, headers=auth)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    huge = b'{"sensor_id": "' + b"a" * (fn_settings.max_body_bytes + 10) + b'"}'
    response = raw(client, path, huge, auth)
    assert response.status_code == 413
    assert response.json["field"] == "body"
    assert count(clean_db, "water_inferences") == 0
    assert count(clean_db, "water_potability") == 0


def test_timestamps() -> None:
    assert parse_timestamp("2024-05-01T09:30:00Z", "t", NOW) == datetime(
        2024, 5, 1, 9, 30, tzinfo=UTC
    )
    assert parse_timestamp("2024-05-01t11:30:00.1234567+02:00", "t", NOW) == datetime(
        2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC
    )
    assert parse_timestamp((NOW + timedelta(minutes=4)).isoformat(), "t", NOW) > NOW
    for bad in (
        "2024-05-01",
        "2024-05-01T09:30Z",
        "2024-05-01T25:00:00Z",
        "1969-12-31T23:59:59Z",
        "2024-05-01T09:30:00+24:00",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        (NOW + timedelta(minutes=6)).isoformat(),
    ):
        with pytest.raises(ApiError) as err:
            parse_timestamp(bad, "t", NOW)
        assert err.value.field == "t" and err.value.status == 400
