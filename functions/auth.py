"""Who may add lab samples, and who they are (``submitted_by``).

Two layers, both fail closed:

* **On GCP** (``SAMPLES_TRUST_PLATFORM_IDENTITY=true``) Cloud Run only lets a request in if it
  carries a Google-signed ID token of a principal holding ``roles/run.invoker`` on the samples
  function - Terraform grants that to the regulator group only. Cloud Run checks
  ``X-Serverless-Authorization`` instead of ``Authorization`` when a request carries it, and
  then passes ``Authorization`` through unchecked
  (https://cloud.google.com/run/docs/authenticating/service-to-service): such requests are
  refused (401), so the token we read is the one IAM checked. We verify it again ourselves
  (:mod:`functions.google_id_token`: signature against Google's cached keys, audience = the
  function's URL ``SAMPLES_ID_TOKEN_AUDIENCE``, expiry, issuer) and record its ``email``. Only
  if Cloud Run removed the signature (an empty third part: the platform verified and stripped
  it) are audience, expiry and issuer checked without it. If regulator tokens are also
  configured (``SAMPLES_TOKEN_SHA256`` or its secret), the caller must additionally present one
  in ``X-Regulator-Token`` (defence in depth: a mis-granted invoker role alone is not enough).
* **Locally** the caller presents ``Authorization: Bearer <token>``; the token's sha256 must be
  one of the regulator tokens' hashes (:mod:`functions.regulator_tokens`). Configuration only
  ever holds hashes, and the submitter is recorded as ``token:<first 8 hex of the hash>``,
  never the token. No hashes configured and not on GCP -> every request is refused.

Missing credentials -> 401, wrong credentials -> 403, before the body is even read.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from functions import google_id_token
from functions.http import ApiError
from potability.config import Settings, token_sha256

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

RequestHeaders: TypeAlias = "Headers | Mapping[str, str]"
"""A request's headers: flask's (case-insensitive) in the functions, a plain mapping in tests."""

TOKEN_HEADER = "X-Regulator-Token"
SERVERLESS_HEADER = "X-Serverless-Authorization"
MAX_TOKEN_CHARS = 8192


_DEFAULT_CERTS: google_id_token.GoogleCerts | None = None


def default_certs() -> google_id_token.GoogleCerts:
    """This process's cache of Google's certificates (one fetch per hour, not per request)."""
    global _DEFAULT_CERTS
    if _DEFAULT_CERTS is None:
        _DEFAULT_CERTS = google_id_token.GoogleCerts()
    return _DEFAULT_CERTS


def submitter_for_token(token: str) -> str:
    """The name a token's submissions are recorded under (never the token itself)."""
    return f"token:{token_sha256(token)[:8]}"


def bearer(headers: RequestHeaders) -> str:
    value = headers.get("Authorization", "")
    if not value:
        raise ApiError(
            401, "Authorization", "a bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise ApiError(
            401, "Authorization", "must be 'Bearer <token>'", {"WWW-Authenticate": "Bearer"}
        )
    return token


def _token_allowed(token: str, allowed: tuple[str, ...]) -> bool:
    digest = token_sha256(token)
    # Compare against every hash (constant time each) so timing says nothing about which.
    return any(hmac.compare_digest(digest, h) for h in allowed)


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "Authorization", message, {"WWW-Authenticate": "Bearer"})


def _stripped_claims(payload_part: str, audiences: tuple[str, ...]) -> dict[str, Any]:
    """The claims of a token whose signature Cloud Run verified and removed: audience,
    expiry and issuer are still ours to check."""
    payload = payload_part + "=" * (-len(payload_part) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        raise _unauthenticated("unreadable ID token") from None
    if not isinstance(claims, dict):
        raise _unauthenticated("unreadable ID token")
    aud = claims.get("aud")
    if not audiences or aud not in audiences:
        raise _unauthenticated("the ID token is not for this function (audience)")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp + google_id_token.CLOCK_SKEW_SECONDS < time.time():
        raise _unauthenticated("the ID token has expired")
    if claims.get("iss") not in google_id_token.ISSUERS:
        raise _unauthenticated("the ID token was not issued by Google")
    return claims


def id_token_email(
    token: str, audiences: tuple[str, ...], certs: google_id_token.CertsSource
) -> str:
    """The verified ``email`` of a Google ID token issued for this function."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _unauthenticated("expected a Google ID token (JWT)")
    if parts[2]:
        try:
            claims = google_id_token.verify(token, audiences, certs)
        except google_id_token.InvalidIdToken as exc:
            raise _unauthenticated(str(exc)) from None
    else:
        claims = _stripped_claims(parts[1], audiences)
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise ApiError(403, "Authorization", "the ID token carries no e-mail identity")
    if claims.get("email_verified") is False:
        raise ApiError(403, "Authorization", "the ID token's e-mail is not verified")
    return email


def authorise_samples(
    headers: RequestHeaders,
    settings: Settings,
    certs: google_id_token.CertsSource | None = None,
    hashes: tuple[str, ...] | None = None,
) -> str:
    """The caller's identity for ``submitted_by``, or an :class:`ApiError` (401/403).

    ``hashes``: the regulator tokens' hashes accepted now (:mod:`functions.regulator_tokens`;
    default ``settings.samples_token_sha256``)."""
    allowed = settings.samples_token_sha256 if hashes is None else hashes
    if settings.samples_trust_platform_identity:
        if headers.get(SERVERLESS_HEADER) is not None:
            raise ApiError(
                401,
                SERVERLESS_HEADER,
                "send the ID token in Authorization only: with this header Cloud "
                "Run would not check the one we read",
                {"WWW-Authenticate": "Bearer"},
            )
        email = id_token_email(
            bearer(headers), settings.samples_id_token_audience, certs or default_certs()
        )
        if allowed or settings.samples_token_secret:
            extra = headers.get(TOKEN_HEADER, "")
            if not extra:
                raise ApiError(401, TOKEN_HEADER, "a regulator token is required")
            if len(extra) > MAX_TOKEN_CHARS or not _token_allowed(extra, allowed):
                raise ApiError(403, TOKEN_HEADER, "not an authorised regulator token")
        return email
    token = bearer(headers)
    if not allowed:
        raise ApiError(
            403,
            "Authorization",
            "no regulator tokens are configured (SAMPLES_TOKEN_SHA256): refusing all",
        )
    if not _token_allowed(token, allowed):
        raise ApiError(403, "Authorization", "not an authorised regulator token")
    return submitter_for_token(token)
