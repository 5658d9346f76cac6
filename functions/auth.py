"""Who may add lab samples, and who they are (``submitted_by``).

Two layers, both fail closed:

* **On GCP** (``SAMPLES_TRUST_PLATFORM_IDENTITY=true``) Cloud Run only lets a request in if it
  carries a Google-signed ID token of a principal holding ``roles/run.invoker`` on the samples
  function - Terraform grants that to the regulator group only. Cloud Run checks
  ``X-Serverless-Authorization`` instead of ``Authorization`` when a request carries it, and
  then passes ``Authorization`` through unchecked
  (https://cloud.google.com/run/docs/authenticating/service-to-service): such requests are
  refused (401), so the token we read is the one IAM checked. Cloud Run forwards it with its
  signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
  (https://cloud.google.com/run/docs/troubleshooting#signature-removed): where Terraform says
  the function runs behind that check (``ID_TOKEN_PLATFORM_VERIFIED``) exactly that marker is
  accepted in place of the signature, and we check audience (the function's URLs,
  ``SAMPLES_ID_TOKEN_AUDIENCE``), issuer and ``iat``/``nbf``/``exp`` ourselves
  (:func:`id_token_email`); a token with a real signature is verified against Google's keys;
  an empty signature is never accepted. We record its ``email``. If regulator tokens are also
  configured (``SAMPLES_TOKEN_SHA256`` or its secret), the caller must additionally present one
  in ``X-Regulator-Token`` (defence in depth: a mis-granted invoker role alone is not enough).
* **Locally** the caller presents ``Authorization: Bearer <token>``; the token's sha256 must be
  one of the regulator tokens' hashes (:mod:`functions.regulator_tokens`). Configuration only
  ever holds hashes, and the submitter is recorded as ``token:<first 8 hex of the hash>``,
  never the token. No hashes configured and not on GCP -> every request is refused.

Missing credentials -> 401, wrong credentials -> 403, before the body is even read.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

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


def id_token_email(
    token: str,
    audiences: tuple[str, ...],
    certs: google_id_token.CertsSource,
    platform_verified: bool = False,
) -> str:
    """The ``email`` of a Google ID token issued for this function, once it is verified.

    A token is verified either by its signature (:func:`google_id_token.verify`) or - only
    where ``platform_verified`` (``ID_TOKEN_PLATFORM_VERIFIED``: Terraform sets it on the
    functions behind Cloud Run's IAM check) - by Cloud Run's front end, which then forwards it
    with the signature replaced by exactly ``SIGNATURE_REMOVED_BY_GOOGLE``
    (https://cloud.google.com/run/docs/troubleshooting#signature-removed). An empty or missing
    signature is never accepted: nothing verified that token.
    """
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _unauthenticated("expected a Google ID token (JWT)")
    try:
        if parts[2] == google_id_token.PLATFORM_SIGNATURE:
            if not platform_verified:
                raise google_id_token.InvalidIdToken(
                    "the ID token's signature was removed, but this function is not deployed "
                    "behind Cloud Run's IAM check (ID_TOKEN_PLATFORM_VERIFIED)"
                )
            claims = google_id_token.platform_verified_claims(token, audiences)
        elif not parts[2]:
            raise google_id_token.InvalidIdToken("the ID token has no signature")
        else:
            claims = google_id_token.verify(token, audiences, certs)
    except google_id_token.InvalidIdToken as exc:
        raise _unauthenticated(str(exc)) from None
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
            bearer(headers),
            settings.samples_id_token_audience,
            certs or default_certs(),
            settings.id_token_platform_verified,
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
