"""The emulated Cloud Run front end's decisions (pure: no server), one per documented rule
(tools/cloud_run_frontend.py cites the Google page for each)."""

from __future__ import annotations

import pytest
from cloud_run_support import frontend_module

cr = frontend_module()
ISSUER = cr.Issuer()
URLS = cr.service_urls("potability-predict", "test-project", "123456789012", "europe-west1")
SENSOR = "sensor-a@sensors.iam.gserviceaccount.com"
PRIVATE = cr.Service(
    "potability-predict",
    "http://127.0.0.1:1",
    URLS,
    frozenset({f"serviceAccount:{SENSOR}", "group:lab@example.com"}),
)
PUBLIC = cr.Service("potability-status", "http://127.0.0.1:2", URLS, frozenset({"allUsers"}))
DIRECTORY = cr.Directory({"lab@example.com": {"alice@example.com"}})


def decide(service, headers, size: int = 0):
    return cr.decide(service, headers, "203.0.113.9", ISSUER.certs(), DIRECTORY, size)


def bearer(email: str, audience: str = URLS[0], **claims) -> str:
    return f"Bearer {ISSUER.id_token(email, audience, **claims)}"


def test_service_urls_are_the_run_app_and_cloudfunctions_forms() -> None:
    assert URLS == (
        "https://potability-predict-123456789012.europe-west1.run.app",
        "https://europe-west1-test-project.cloudfunctions.net/potability-predict",
    )


def test_an_invoker_is_forwarded_with_the_signature_replaced_and_googles_headers() -> None:
    token = bearer(SENSOR)
    verdict = decide(PRIVATE, {"Authorization": token, "Content-Type": "application/json"})
    assert verdict.status is None and verdict.caller == SENSOR
    head, payload, signature = verdict.headers["Authorization"].removeprefix("Bearer ").split(".")
    assert [head, payload] == token.removeprefix("Bearer ").split(".")[:2]
    assert signature == "SIGNATURE_REMOVED_BY_GOOGLE"
    assert verdict.headers["X-Forwarded-For"] == "203.0.113.9"
    assert verdict.headers["X-Forwarded-Proto"] == "https"
    trace, rest = verdict.headers["X-Cloud-Trace-Context"].split("/")
    assert len(trace) == 32 and rest.endswith(";o=1")
    assert verdict.headers["traceparent"].startswith(f"00-{trace}-")
    assert verdict.headers["Content-Type"] == "application/json"


def test_a_persons_gcloud_token_passes_the_front_end_as_cloud_run_documents() -> None:
    verdict = decide(PRIVATE, {"Authorization": bearer("alice@example.com", cr.GCLOUD_CLIENT_ID)})
    assert verdict.status is None and verdict.caller == "alice@example.com"


def test_group_members_are_invokers_through_the_directory() -> None:
    assert decide(PRIVATE, {"Authorization": bearer("alice@example.com")}).status is None
    assert decide(PRIVATE, {"Authorization": bearer("bob@example.com")}).status == 403


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),  # no token at all
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, 401),
        ({"Authorization": bearer(SENSOR, "https://elsewhere.run.app")}, 401),
        ({"Authorization": bearer(SENSOR, cr.GCLOUD_CLIENT_ID)}, 401),  # an account: its URL
        ({"Authorization": bearer("bob@example.com", cr.GCLOUD_CLIENT_ID)}, 403),  # a person
        ({"Authorization": bearer(SENSOR, exp=1, iat=0)}, 401),
        ({"Authorization": bearer("nobody@example.com")}, 403),
    ],
)
def test_refusals(headers: dict[str, str], status: int) -> None:
    verdict = decide(PRIVATE, headers)
    assert verdict.status == status
    if status == 401:
        assert verdict.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_x_serverless_authorization_is_checked_and_authorization_passes_unchecked() -> None:
    forged = "Bearer forged.token.here"
    verdict = decide(
        PRIVATE, {"X-Serverless-Authorization": bearer(SENSOR), "Authorization": forged}
    )
    assert verdict.status is None
    assert verdict.headers["Authorization"] == forged
    assert verdict.headers["X-Serverless-Authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")


def test_a_public_service_forwards_whatever_it_gets() -> None:
    verdict = decide(PUBLIC, {"Authorization": "Bearer anything"})
    assert verdict.status is None and verdict.headers["Authorization"] == "Bearer anything"


def test_bodies_over_32_mib_are_refused() -> None:
    assert decide(PUBLIC, {}, cr.MAX_REQUEST_BYTES + 1).status == 413
    assert decide(PUBLIC, {}, cr.MAX_REQUEST_BYTES).status is None
