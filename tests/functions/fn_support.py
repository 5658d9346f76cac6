"""Helpers shared by the functions' tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import secrets
from typing import Any

import flask

from functions import predict, samples
from functions.context import Context, serve
from potability import db
from potability.features import FEATURE_NAMES

REGULATOR_TOKEN = "test-regulator-" + secrets.token_hex(8)

GOOD_READING: dict[str, float | None] = {
    "ph": 7.08,
    "Hardness": 196.4,
    "Solids": 21000.0,
    "Chloramines": 7.1,
    "Sulfate": 333.0,
    "Conductivity": 421.0,
    "Organic_carbon": 14.2,
    "Trihalomethanes": 66.4,
    "Turbidity": 3.9,
}


def reading(**changes: Any) -> dict[str, Any]:
    return {**GOOD_READING, **changes}


def sample(sample_id: str, **changes: Any) -> dict[str, Any]:
    return {
        **GOOD_READING,
        "potability": 1,
        "sample_id": sample_id,
        "sampled_at": "2024-05-01T09:30:00Z",
        "sensor_id": "plant-7",
        **changes,
    }


def count(conn: db.Connection, table: str) -> int:
    conn.rollback()  # a fresh snapshot: see what other connections committed
    cur = conn.cursor()
    cur.execute(
        f"SELECT count(*) FROM water.{table}"
        + (" WHERE source = 'lab'" if table == "water_potability" else "")
    )
    value = cur.fetchone()[0]
    conn.rollback()
    return value


def make_app(ctx: Context) -> flask.Flask:
    """Both handlers, each on its own path, exactly as main.py wires them."""
    app = flask.Flask("functions-under-test")
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app.add_url_rule(
        "/predict",
        "predict",
        methods=methods,
        view_func=lambda: serve(predict.FUNCTION, predict.handle, flask.request, ctx),
    )
    app.add_url_rule(
        "/add_sample",
        "add_sample",
        methods=methods,
        view_func=lambda: serve(samples.FUNCTION, samples.handle, flask.request, ctx),
    )
    return app


def matches_document(schema: str, answer: Any) -> None:
    """Raise unless ``answer`` is a ``schema`` of the published OpenAPI document
    (``components.schemas``, JSON Schema 2020-12 as OpenAPI 3.1 says): the contract of the
    answers, checked on real ones."""
    import yaml
    from jsonschema import Draft202012Validator

    from functions.openapi import DOCUMENT_PATH

    document = yaml.safe_load(DOCUMENT_PATH.read_text())
    Draft202012Validator({**document, "$ref": f"#/components/schemas/{schema}"}).validate(answer)


assert len(GOOD_READING) == len(FEATURE_NAMES)
