"""The add_sample function: authorisation, all-or-nothing batches, idempotency on sample ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fn_support import REGULATOR_TOKEN, count, make_app, sample
from id_tokens import AUDIENCE, FakeGoogleCerts, TestKey

from functions.auth import authorise_samples, submitter_for_token, token_sha256
from functions.context import Context
from functions.http import ApiError
from potability.config import Settings


def post(client: Any, body: Any, headers: dict[str, str] | None) -> Any:
    return client.post("/add_sample", json=body, headers=headers or {})


GOOGLE = TestKey("google-test")


def id_token(claims: dict[str, Any]) -> str:
    """A Google-signed (test key) ID token for the samples function with these claims."""
    return GOOGLE.token(**{"email": None, "email_verified": None, **claims})


def test_one_sample_is_recorded_with_its_submitter(client, clean_db, auth) -> None:
    response = post(client, sample("lab-1"), auth)
    assert response.status_code == 201, response.json
    assert response.json["recorded"] == 1
    assert response.json["samples"] == [{"sample_id": "lab-1", "status": "recorded"}]
    cur = clean_db.cursor()
    cur.execute(
        "SELECT ph, turbidity, potability, sensor_id, sampled_at, submitted_by, source "
        "FROM water.water_potability WHERE sample_id = 'lab-1'"
    )
    [row] = cur.fetchall()
    assert row[:4] == [7.08, 3.9, 1, "plant-7"]
    assert row[4] == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert row[5] == submitter_for_token(REGULATOR_TOKEN)
    assert REGULATOR_TOKEN not in row[5]
    assert row[6] == "lab"


def test_batch_is_recorded(client, clean_db, auth) -> None:
    batch = {"samples": [sample(f"lab-{i}", ph=i / 2, sensor_id=None) for i in range(20)]}
    response = post(client, batch, auth)
    assert response.status_code == 201, response.json
    assert response.json["recorded"] == 20
    assert count(clean_db, "water_potability") == 20


def test_repeated_identical_sample_is_already_recorded(client, clean_db, auth) -> None:
    assert post(client, sample("lab-1"), auth).status_code == 201
    # Same instant written with another offset and more precision: still the same sample.
    again = post(client, sample("lab-1", sampled_at="2024-05-01T11:30:00.000+02:00"), auth)
    assert again.status_code == 200
    assert again.json["message"] == "already recorded"
    assert again.json["already_recorded"] == 1
    assert count(clean_db, "water_potability") == 1


def test_batch_with_some_known_samples_records_the_rest(client, clean_db, auth) -> None:
    assert post(client, sample("lab-1"), auth).status_code == 201
    response = post(client, {"samples": [sample("lab-1"), sample("lab-2")]}, auth)
    assert response.status_code == 200
    assert response.json["samples"] == [
        {"sample_id": "lab-1", "status": "already recorded"},
        {"sample_id": "lab-2", "status": "recorded"},
    ]
    assert count(clean_db, "water_potability") == 2


@pytest.mark.parametrize(
    "change",
    [
        {"ph": 6.5},
        {"potability": 0},
        {"sensor_id": "other"},
        {"sampled_at": "2024-05-01T09:31:00Z"},
        {"Sulfate": None},
    ],
)
def test_same_id_other_values_is_409_and_the_batch_is_refused(
    client, clean_db, auth, change
) -> None:
    assert post(client, sample("lab-1"), auth).status_code == 201
    response = post(client, {"samples": [sample("lab-2"), sample("lab-1", **change)]}, auth)
    assert response.status_code == 409
    assert response.json["field"] == "samples[1].sample_id"
    assert count(clean_db, "water_potability") == 1  # lab-2 was not written either


def test_a_seed_row_id_is_not_overwritten(client, clean_db, auth) -> None:
    cur = clean_db.cursor()
    cur.execute("SELECT sample_id FROM water.water_potability WHERE source = 'seed' LIMIT 1")
    [seed_id] = cur.fetchone()
    clean_db.rollback()
    response = post(client, sample(seed_id), auth)
    assert response.status_code == 409
    assert count(clean_db, "water_potability") == 0


def test_one_bad_sample_refuses_the_whole_batch(client, clean_db, auth) -> None:
    batch = {"samples": [sample("lab-1"), sample("lab-2", Turbidity=1000.0)]}
    response = post(client, batch, auth)
    assert response.status_code == 400
    assert response.json["field"] == "samples[1].Turbidity"
    assert count(clean_db, "water_potability") == 0


def test_duplicate_ids_in_one_batch_are_refused(client, clean_db, auth) -> None:
    response = post(client, {"samples": [sample("lab-1"), sample("lab-1")]}, auth)
    assert response.status_code == 400
    assert response.json["field"] == "samples[1].sample_id"
    assert count(clean_db, "water_potability") == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer not-the-token"}, 403),
        ({"Authorization": f"Bearer {REGULATOR_TOKEN}x"}, 403),
        ({"Authorization": f"Bearer {token_sha256(REGULATOR_TOKEN)}"}, 403),  # the hash is no token
    ],
)
def test_unauthorised_callers_are_refused_and_nothing_written(
    client, clean_db, headers, status
) -> None:
    response = post(client, sample("lab-1"), headers)
    assert response.status_code == status
    assert response.json["field"] == "Authorization"
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert count(clean_db, "water_potability") == 0


def test_auth_is_checked_before_the_body(client, clean_db) -> None:
    response = client.post("/add_sample", data=b"{not json", content_type="application/json")
    assert response.status_code == 401


def test_no_configured_tokens_refuses_everyone(fn_settings, clean_db) -> None:
    ctx = Context(fn_settings.with_(samples_token_sha256=()))
    response = post(
        make_app(ctx).test_client(), sample("lab-1"), {"Authorization": f"Bearer {REGULATOR_TOKEN}"}
    )
    assert response.status_code == 403
    assert count(clean_db, "water_potability") == 0


def test_platform_identity_is_recorded_on_gcp(fn_settings, clean_db) -> None:
    ctx = Context(
        fn_settings.with_(
            samples_trust_platform_identity=True,
            samples_token_sha256=(),
            samples_id_token_audience=(AUDIENCE,),
        ),
        google_certs=FakeGoogleCerts(GOOGLE),
    )
    client = make_app(ctx).test_client()
    token = id_token({"email": "regulator@example.org", "email_verified": True})
    response = post(client, sample("lab-1"), {"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.json
    assert response.json["submitted_by"] == "regulator@example.org"
    cur = clean_db.cursor()
    cur.execute("SELECT submitted_by FROM water.water_potability WHERE sample_id = 'lab-1'")
    assert cur.fetchone()[0] == "regulator@example.org"


def test_platform_identity_plus_regulator_token_when_configured(fn_settings) -> None:
    settings = fn_settings.with_(
        samples_trust_platform_identity=True, samples_id_token_audience=(AUDIENCE,)
    )
    certs = FakeGoogleCerts(GOOGLE)
    token = id_token({"email": "regulator@example.org"})
    bearer = {"Authorization": f"Bearer {token}"}
    with pytest.raises(ApiError) as missing:
        authorise_samples(bearer, settings, certs)
    assert (missing.value.status, missing.value.field) == (401, "X-Regulator-Token")
    with pytest.raises(ApiError) as wrong:
        authorise_samples({**bearer, "X-Regulator-Token": "nope"}, settings, certs)
    assert wrong.value.status == 403
    ok = authorise_samples({**bearer, "X-Regulator-Token": REGULATOR_TOKEN}, settings, certs)
    assert ok == "regulator@example.org"


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("not-a-jwt", 401),
        ("a.!!!.c", 401),
        (id_token({"sub": "123"}), 403),
        (id_token({"email": "x@example.org", "email_verified": False}), 403),
    ],
)
def test_platform_identity_without_email_is_refused(token, status) -> None:
    settings = Settings(samples_trust_platform_identity=True, samples_id_token_audience=(AUDIENCE,))
    with pytest.raises(ApiError) as err:
        authorise_samples({"Authorization": f"Bearer {token}"}, settings, FakeGoogleCerts(GOOGLE))
    assert err.value.status == status


def test_database_down_is_503_and_nothing_written(fn_settings, clean_db, auth, tmp_path) -> None:
    ctx = Context(
        fn_settings.with_(database_url=f"postgresql://postgres@/potability?host={tmp_path}")
    )
    response = post(make_app(ctx).test_client(), {"samples": [sample("lab-1")]}, auth)
    assert response.status_code == 503
    assert response.json["field"] == "database"
    assert int(response.headers["Retry-After"]) > 0
    assert count(clean_db, "water_potability") == 0


def test_concurrent_identical_samples_are_recorded_once(fn_context, clean_db, auth) -> None:
    import concurrent.futures

    app = make_app(fn_context)
    batch = {"samples": [sample(f"race-{i}") for i in range(10)]}

    def send(_: int) -> int:
        return app.test_client().post("/add_sample", json=batch, headers=auth).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(send, range(12)))
    assert sorted(set(statuses)) == [200, 201] and statuses.count(201) == 1
    assert count(clean_db, "water_potability") == 10


def test_another_regulators_sample_id_is_taken_and_its_values_are_not_confirmed(
    fn_settings, client, clean_db, auth
) -> None:
    assert post(client, sample("lab-a-1"), auth).status_code == 201
    other = "other-regulator-token"
    ctx = Context(
        fn_settings.with_(
            samples_token_sha256=(*fn_settings.samples_token_sha256, token_sha256(other))
        )
    )
    thief = make_app(ctx).test_client()
    same_values = post(thief, sample("lab-a-1"), {"Authorization": f"Bearer {other}"})
    assert same_values.status_code == 409 and same_values.json["field"] == "sample_id"
    other_values = post(thief, sample("lab-a-1", ph=3.0), {"Authorization": f"Bearer {other}"})
    assert other_values.status_code == 409
    assert same_values.json["error"] == other_values.json["error"]  # nothing to tell them apart
    cur = clean_db.cursor()
    cur.execute("SELECT submitted_by FROM water.water_potability WHERE sample_id = 'lab-a-1'")
    assert [list(r) for r in cur.fetchall()] == [[submitter_for_token(REGULATOR_TOKEN)]]
    clean_db.rollback()
    ctx.close()


def test_the_submitter_is_in_the_training_tables_history(client, clean_db, auth) -> None:
    assert post(client, sample("lab-hist-1"), auth).status_code == 201
    cur = clean_db.cursor()
    cur.execute(
        "SELECT operation, app_user FROM water.water_potability_history "
        "WHERE new_row->>'sample_id' = 'lab-hist-1'"
    )
    assert [list(r) for r in cur.fetchall()] == [["INSERT", submitter_for_token(REGULATOR_TOKEN)]]
    clean_db.rollback()
