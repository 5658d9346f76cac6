"""The samples function verifies Google ID tokens itself (tokens signed by a test RSA key)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fn_support import count, make_app, sample
from id_tokens import AUDIENCE, FakeGoogleCerts, TestKey, platform_stripped, unsigned

from functions import google_id_token
from functions.auth import authorise_samples
from functions.context import Context
from functions.http import ApiError
from potability.config import Settings

GOOGLE = TestKey("google-key-1")
ATTACKER = TestKey("google-key-1")  # same kid as Google's, a key Google never published
GCP = Settings(samples_trust_platform_identity=True, samples_id_token_audience=(AUDIENCE,))


def refused(headers: dict[str, str], settings: Settings = GCP) -> ApiError:
    with pytest.raises(ApiError) as err:
        authorise_samples(headers, settings, FakeGoogleCerts(GOOGLE))
    return err.value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_google_signed_token_for_this_function_names_the_submitter() -> None:
    assert (
        authorise_samples(bearer(GOOGLE.token()), GCP, FakeGoogleCerts(GOOGLE))
        == "regulator@example.org"
    )


# Tokens are made when the test runs, not at collection: a parallel suite may reach a test
# minutes after collecting it, when a token "not valid for ten minutes" already is.
@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda now: ATTACKER.token(email="boss@example.org"), "signature"),
        (lambda now: TestKey("other-kid").token(), "not signed by a current Google key"),
        (lambda now: GOOGLE.token(aud="https://another-function"), "audience"),
        (lambda now: GOOGLE.token(exp=now - 120, iat=now - 3720), "expired"),
        (lambda now: GOOGLE.token(iss="https://evil.example"), "issuer"),
        (lambda now: GOOGLE.token(iat=now + 600, exp=now + 4000), "early"),
        (lambda now: "a.b.c", "malformed"),
    ],
)
def test_forged_foreign_expired_or_misaddressed_tokens_are_refused(
    token: Callable[[int], str], reason: str
) -> None:
    error = refused(bearer(token(int(time.time()))))
    assert (error.status, error.field) == (401, "Authorization"), reason


def test_x_serverless_authorization_is_refused_whatever_authorization_says() -> None:
    """Cloud Run checks that header for IAM and passes Authorization through unchecked."""
    error = refused(
        {**bearer(GOOGLE.token()), "X-Serverless-Authorization": f"Bearer {GOOGLE.token()}"}
    )
    assert (error.status, error.field) == (401, "X-Serverless-Authorization")


BEHIND_CLOUD_RUN = GCP.with_(id_token_platform_verified=True)


def test_a_token_cloud_run_verified_and_stripped_is_accepted_behind_cloud_run() -> None:
    """What every sensor's and regulator's request looks like on GCP (issue 28: refused
    before, because the marker was sent to signature verification)."""
    token = platform_stripped(GOOGLE.token())
    assert token.endswith(".SIGNATURE_REMOVED_BY_GOOGLE")
    assert authorise_samples(bearer(token), BEHIND_CLOUD_RUN, FakeGoogleCerts()) == (
        "regulator@example.org"
    )


def test_the_marker_is_refused_where_the_deployment_is_not_behind_cloud_run() -> None:
    error = refused(bearer(platform_stripped(GOOGLE.token())), GCP)
    assert (error.status, error.field) == (401, "Authorization")
    assert "ID_TOKEN_PLATFORM_VERIFIED" in error.message


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (lambda now: {"aud": "https://another-function"}, "audience"),
        (lambda now: {"exp": now - 120, "iat": now - 3720}, "expired"),
        (lambda now: {"iat": now + 600, "exp": now + 4000}, "not valid yet"),
        (lambda now: {"nbf": now + 600}, "not valid yet"),
        (lambda now: {"iss": "https://evil.example"}, "issued by Google"),
        (lambda now: {"iat": None}, "exp/iat"),
    ],
)
def test_a_stripped_token_is_still_checked_for_audience_issuer_and_times(
    claims: Callable[[int], dict[str, Any]], reason: str
) -> None:
    token = GOOGLE.token(**claims(int(time.time())))
    error = refused(bearer(platform_stripped(token)), BEHIND_CLOUD_RUN)
    assert (error.status, error.field) == (401, "Authorization")
    assert reason in error.message


@pytest.mark.parametrize(
    "token",
    [
        unsigned(GOOGLE.token()),  # empty third part: nothing verified it (fail-open before)
        GOOGLE.token().rsplit(".", 1)[0],  # no third part at all
        GOOGLE.token().rsplit(".", 1)[0] + ".SIGNATURE_REMOVED",  # not Google's marker
        "." + GOOGLE.token().split(".")[1] + ".SIGNATURE_REMOVED_BY_GOOGLE",  # no header
    ],
)
def test_empty_missing_or_made_up_signatures_are_never_accepted(token: str) -> None:
    for settings in (GCP, BEHIND_CLOUD_RUN):
        error = refused(bearer(token), settings)
        assert (error.status, error.field) == (401, "Authorization")


def test_a_signed_token_not_valid_yet_is_refused() -> None:
    error = refused(bearer(GOOGLE.token(nbf=int(time.time()) + 600)))
    assert error.status == 401 and "not valid yet" in error.message


def test_no_audience_configured_refuses_everyone() -> None:
    assert refused(bearer(GOOGLE.token()), GCP.with_(samples_id_token_audience=())).status == 401


def test_forged_identity_writes_nothing_through_the_function(fn_settings, clean_db) -> None:
    ctx = Context(
        fn_settings.with_(
            samples_trust_platform_identity=True,
            samples_token_sha256=(),
            samples_id_token_audience=(AUDIENCE,),
        ),
        google_certs=FakeGoogleCerts(GOOGLE),
    )
    client = make_app(ctx).test_client()
    forged = client.post(
        "/add_sample",
        json=sample("lab-forged"),
        headers=bearer(ATTACKER.token(email="boss@example.org")),
    )
    assert forged.status_code == 401 and forged.json["field"] == "Authorization"
    assert count(clean_db, "water_potability") == 0
    ok = client.post("/add_sample", json=sample("lab-ok"), headers=bearer(GOOGLE.token()))
    assert ok.status_code == 201 and ok.json["submitted_by"] == "regulator@example.org"


class RecordingSession:
    """A requests-like session answering Google's certs URL (asserts the exact request)."""

    def __init__(self, certs: dict[str, str], cache_control: str) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.certs, self.cache_control = certs, cache_control

    def get(self, url: str, timeout: float) -> Any:
        self.calls.append((url, timeout))
        session = self

        class Response:
            headers = {"Cache-Control": session.cache_control}

            def raise_for_status(self) -> None:
                pass

            def json(self) -> dict[str, str]:
                return dict(session.certs)

        return Response()


def test_google_certs_are_fetched_once_and_cached_for_their_max_age() -> None:
    now = [1000.0]
    session = RecordingSession(
        {GOOGLE.kid: GOOGLE.cert_pem}, "public, max-age=20000, must-revalidate"
    )
    certs = google_id_token.GoogleCerts(session, clock=lambda: now[0])
    for _ in range(50):
        google_id_token.verify(GOOGLE.token(), [AUDIENCE], certs)
    assert session.calls == [("https://www.googleapis.com/oauth2/v1/certs", 10)]
    # an unknown kid re-fetches at once, but not more often than every MIN_REFETCH_SECONDS
    stranger = TestKey("new-kid")
    for _ in range(5):
        with pytest.raises(google_id_token.InvalidIdToken):
            google_id_token.verify(stranger.token(), [AUDIENCE], certs)
    assert len(session.calls) == 1  # the first fetch was under MIN_REFETCH_SECONDS ago
    now[0] += google_id_token.MIN_REFETCH_SECONDS
    session.certs[stranger.kid] = stranger.cert_pem  # Google publishes its next key
    assert google_id_token.verify(stranger.token(), [AUDIENCE], certs)["email"]
    assert len(session.calls) == 2
    now[0] += 6 * 3600  # max-age (capped at 6 h) passed: fetched again
    google_id_token.verify(GOOGLE.token(), [AUDIENCE], certs)
    assert len(session.calls) == 3
