"""Predict binds each caller to its sensor ids: an ID token's account on GCP, a sensor token
locally (tokens signed by a test RSA key)."""

from __future__ import annotations

import json

import pytest
from fn_support import GOOD_READING, count, make_app
from id_tokens import FakeGoogleCerts, TestKey

from functions.callers import LOCAL_OPEN_CALLER, predict_caller
from functions.context import Context
from functions.http import ApiError
from potability.config import Settings, token_sha256

GOOGLE = TestKey("google-predict")
PREDICT_URL = "https://europe-west1-proj.cloudfunctions.net/potability-predict"
PLANT_A = "sensor-a@proj.iam.gserviceaccount.com"
SENSOR_TOKEN = "sensor-token-plant-9"


def token_of(email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {GOOGLE.token(email=email, aud=PREDICT_URL)}"}


@pytest.fixture
def gcp_client(fn_settings, clean_db):
    settings = fn_settings.with_(
        predict_id_token_audience=(PREDICT_URL,),
        predict_sensor_bindings=((PLANT_A, ("plant-1", "plant-2")),),
    )
    ctx = Context(settings, google_certs=FakeGoogleCerts(GOOGLE))
    yield make_app(ctx).test_client()
    ctx.close()


def predict(client, sensor_id: str, headers: dict[str, str]):
    return client.post(
        "/predict", json={"sensor_id": sensor_id, "reading": GOOD_READING}, headers=headers
    )


def test_a_sensor_account_writes_its_own_sensors_only(gcp_client, clean_db, capsys) -> None:
    ok = predict(gcp_client, "plant-2", token_of(PLANT_A))
    assert ok.status_code == 200, ok.json
    other = predict(gcp_client, "plant-7", token_of(PLANT_A))
    assert other.status_code == 403 and other.json["field"] == "sensor_id"
    assert "plant-7" in other.json["error"]
    assert count(clean_db, "water_inferences") == 1
    cur = clean_db.cursor()
    cur.execute("SELECT caller, sensor_id FROM water.water_inferences")
    assert [list(r) for r in cur.fetchall()] == [[PLANT_A, "plant-2"]]  # stored with the row
    clean_db.rollback()
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert [entry["caller"] for entry in logged if entry.get("function") == "predict"] == [
        PLANT_A,
        PLANT_A,
    ]


def test_an_unbound_account_or_a_forged_token_writes_nothing(gcp_client, clean_db) -> None:
    unbound = predict(gcp_client, "plant-1", token_of("stranger@proj.iam.gserviceaccount.com"))
    assert unbound.status_code == 403 and unbound.json["field"] == "Authorization"
    forged = TestKey("google-predict").token(email=PLANT_A, aud=PREDICT_URL)  # not Google's key
    assert predict(gcp_client, "plant-1", {"Authorization": f"Bearer {forged}"}).status_code == 401
    assert predict(gcp_client, "plant-1", {}).status_code == 401
    assert count(clean_db, "water_inferences") == 0


def test_local_sensor_tokens_bind_like_accounts() -> None:
    settings = Settings(sensor_token_bindings=((token_sha256(SENSOR_TOKEN), ("plant-9",)),))
    caller = predict_caller({"Authorization": f"Bearer {SENSOR_TOKEN}"}, settings)
    assert caller.identity == f"token:{token_sha256(SENSOR_TOKEN)[:8]}"
    caller.require_sensor("plant-9")
    with pytest.raises(ApiError) as err:
        caller.require_sensor("plant-1")
    assert (err.value.status, err.value.field) == (403, "sensor_id")
    with pytest.raises(ApiError) as wrong:
        predict_caller({"Authorization": "Bearer nope"}, settings)
    assert wrong.value.status == 403
    assert predict_caller({}, Settings()).identity == LOCAL_OPEN_CALLER


def test_bindings_are_read_from_json_settings() -> None:
    settings = Settings.from_env(
        {
            "PREDICT_SENSOR_BINDINGS": json.dumps({PLANT_A: ["plant-1"]}),
            "PREDICT_ID_TOKEN_AUDIENCE": PREDICT_URL,
        }
    )
    assert settings.predict_sensor_bindings == ((PLANT_A, ("plant-1",)),)
    with pytest.raises(ValueError, match=r"PREDICT_SENSOR_BINDINGS=.*expected a JSON object"):
        Settings.from_env({"PREDICT_SENSOR_BINDINGS": '{"a": "plant-1"}'})
