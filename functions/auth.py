"""Who may add lab samples, and who they are (``submitted_by``).

Two layers, both fail closed:

* **On GCP** (``SAMPLES_TRUST_PLATFORM_IDENTITY=true``) Cloud Run only lets a request in if it
  carries a Google-signed ID token of a principal holding ``roles/run.invoker`` on the samples
  function - Terraform grants that to the regulator group only. The platform has verified the
  token, so we only *decode* its payload (no second signature check: we would need Google's
  keys and the network, and Cloud Run may strip the signature anyway) and record its verified
  ``email`` claim. If ``SAMPLES_TOKEN_SHA256`` is also set, the caller must additionally present
  a regulator token in ``X-Regulator-Token`` (defence in depth: a mis-granted invoker role alone
  is not enough).
* **Locally** the caller presents ``Authorization: Bearer <token>``; the token's sha256 must be
  one of ``SAMPLES_TOKEN_SHA256``. Configuration only ever holds hashes, and the submitter is
  recorded as ``token:<first 8 hex of the hash>``, never the token. No hashes configured and
  not on GCP -> every request is refused.

Missing credentials -> 401, wrong credentials -> 403, before the body is even read.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Mapping

from functions.http import ApiError
from potability.config import Settings, token_sha256

TOKEN_HEADER = "X-Regulator-Token"
MAX_TOKEN_CHARS = 8192


def submitter_for_token(token: str) -> str:
    """The name a token's submissions are recorded under (never the token itself)."""
    return f"token:{token_sha256(token)[:8]}"


def _bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("Authorization", "")
    if not value:
        raise ApiError(401, "Authorization", "a bearer token is required",
                       {"WWW-Authenticate": "Bearer"})
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise ApiError(401, "Authorization", "must be 'Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    return token


def _token_allowed(token: str, allowed: tuple[str, ...]) -> bool:
    digest = token_sha256(token)
    # Compare against every hash (constant time each) so timing says nothing about which.
    return any([hmac.compare_digest(digest, h) for h in allowed])


def id_token_email(token: str) -> str:
    """The ``email`` claim of a JWT whose signature the platform already verified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ApiError(401, "Authorization", "expected a Google ID token (JWT)",
                       {"WWW-Authenticate": "Bearer"})
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        raise ApiError(401, "Authorization", "unreadable ID token",
                       {"WWW-Authenticate": "Bearer"}) from None
    email = claims.get("email") if isinstance(claims, dict) else None
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise ApiError(403, "Authorization", "the ID token carries no e-mail identity")
    if claims.get("email_verified") is False:
        raise ApiError(403, "Authorization", "the ID token's e-mail is not verified")
    return email


def authorise_samples(headers: Mapping[str, str], settings: Settings) -> str:
    """The caller's identity for ``submitted_by``, or an :class:`ApiError` (401/403)."""
    if settings.samples_trust_platform_identity:
        email = id_token_email(_bearer(headers))
        if settings.samples_token_sha256:
            extra = headers.get(TOKEN_HEADER, "")
            if not extra:
                raise ApiError(401, TOKEN_HEADER, "a regulator token is required")
            if len(extra) > MAX_TOKEN_CHARS or not _token_allowed(extra, settings.samples_token_sha256):
                raise ApiError(403, TOKEN_HEADER, "not an authorised regulator token")
        return email
    token = _bearer(headers)
    if not settings.samples_token_sha256:
        raise ApiError(403, "Authorization",
                       "no regulator tokens are configured (SAMPLES_TOKEN_SHA256): refusing all")
    if not _token_allowed(token, settings.samples_token_sha256):
        raise ApiError(403, "Authorization", "not an authorised regulator token")
    return submitter_for_token(token)
