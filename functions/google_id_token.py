"""Verify a Google-signed ID token ourselves: signature, audience, expiry, issuer.

Why the samples function does not simply trust Cloud Run: Cloud Run's IAM check reads
``X-Serverless-Authorization`` when a request carries it and then passes ``Authorization``
through untouched (https://cloud.google.com/run/docs/authenticating/service-to-service: the
ID token may be sent in either header). An invoker could put its own token in the first and a
forged one, naming any regulator, in the second. So :mod:`functions.auth` refuses
``X-Serverless-Authorization`` outright and verifies the ``Authorization`` token here.

Verification is ``google.auth.jwt.decode`` (google-auth: RS256 signature against the key
named by the token's ``kid``, ``exp``/``iat`` with a small clock skew, ``aud``), plus
:func:`check_claims` (issuer, ``nbf``). Behind Cloud Run's IAM front end a token arrives with
its signature replaced by :data:`PLATFORM_SIGNATURE`: the front end verified it, and
:func:`platform_verified_claims` checks what remains ours to check - only where the deployment
says it runs behind that front end (``ID_TOKEN_PLATFORM_VERIFIED``, set by Terraform).

Google's public keys come from :class:`GoogleCerts`, a thin adapter over one GET of
``https://www.googleapis.com/oauth2/v1/certs`` (``google.oauth2.id_token``'s certs URL,
``{kid: PEM certificate}``), cached for the response's ``max-age`` (Google rotates the keys
over days and publishes the next one ahead) and re-fetched at once for an unknown ``kid``
(at most every :data:`MIN_REFETCH_SECONDS`, so garbage tokens cannot make us hammer Google).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeGuard

CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CLOCK_SKEW_SECONDS = 30
DEFAULT_MAX_AGE = 3600.0
MIN_REFETCH_SECONDS = 30.0
_MAX_AGE = re.compile(r"max-age=(\d{1,7})")


PLATFORM_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
"""What Cloud Run puts in place of the signature of an ID token its IAM front end verified,
before it forwards the request (https://cloud.google.com/run/docs/troubleshooting, section
"signature-removed": the token stays readable, but can no longer be replayed elsewhere)."""


class InvalidIdToken(ValueError):
    """The token is not a valid Google ID token for us (the message says why)."""


class CertsSource(Protocol):
    def certs(self, refresh: bool = False) -> Mapping[str, str]: ...


class GoogleCerts:
    """Google's ID-token signing certificates, fetched once and cached.

    Args:
        session: a ``requests``-like object with ``get(url, timeout=...)`` (default a plain
            ``requests.Session``: the certs are public).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, session: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = -MIN_REFETCH_SECONDS

    def _get(self) -> tuple[dict[str, str], float]:
        if self._session is None:
            import requests

            self._session = requests.Session()
        response = self._session.get(CERTS_URL, timeout=10)
        response.raise_for_status()
        match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
        max_age = float(match[1]) if match else DEFAULT_MAX_AGE
        certs = response.json()
        if not isinstance(certs, dict) or not all(isinstance(v, str) for v in certs.values()):
            raise InvalidIdToken("Google's certificate list has an unexpected shape")
        return certs, min(max(max_age, 60.0), 6 * 3600.0)

    def certs(self, refresh: bool = False) -> Mapping[str, str]:
        now = self._clock()
        with self._lock:
            stale = now >= self._expires
            may_refetch = now - self._fetched >= MIN_REFETCH_SECONDS
            if stale or (refresh and may_refetch):
                certs, max_age = self._get()
                self._certs, self._expires, self._fetched = certs, now + max_age, now
            return self._certs


def _kid(token: str) -> str | None:
    from google.auth import jwt

    try:
        header = jwt.decode_header(token)
    except (ValueError, TypeError):
        raise InvalidIdToken("malformed ID token") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def check_claims(
    claims: Mapping[str, Any], audiences: Sequence[str], now: float | None = None
) -> None:
    """The checks every ID token must pass, signed or verified by the platform: ours
    (audience), Google's (issuer), and current (``iat``, ``nbf``, ``exp`` within
    :data:`CLOCK_SKEW_SECONDS`). Raises :class:`InvalidIdToken` naming the first that fails."""
    now = time.time() if now is None else now
    if not audiences:
        raise InvalidIdToken("no audience is configured for this function")
    if claims.get("aud") not in audiences:
        raise InvalidIdToken("the ID token is not for this function (audience)")
    if claims.get("iss") not in ISSUERS:
        raise InvalidIdToken("the ID token was not issued by Google")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", claims.get("iat"))
    if not _number(exp) or not _number(iat) or not _number(nbf):
        raise InvalidIdToken("the ID token has no valid exp/iat times")
    if exp + CLOCK_SKEW_SECONDS < now:
        raise InvalidIdToken("the ID token has expired")
    if max(iat, nbf) - CLOCK_SKEW_SECONDS > now:
        raise InvalidIdToken("the ID token is not valid yet (iat/nbf in the future)")


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def platform_verified_claims(token: str, audiences: Sequence[str]) -> dict[str, Any]:
    """The claims of a token whose signature Cloud Run's front end verified and replaced
    with :data:`PLATFORM_SIGNATURE` - exactly that marker, nothing else (an empty or any other
    third part is not a verified token). Audience, issuer and times are still ours to check:
    the front end accepts every audience of the service and knows nothing of ours."""
    import base64
    import json

    header, payload, signature = (token.split(".") + ["", "", ""])[:3]
    if token.count(".") != 2 or not header or not payload or signature != PLATFORM_SIGNATURE:
        raise InvalidIdToken("not a token verified by Cloud Run (its signature marker)")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeError):
        raise InvalidIdToken("unreadable ID token") from None
    if not isinstance(claims, dict):
        raise InvalidIdToken("unreadable ID token")
    check_claims(claims, audiences)
    return claims


def verify(token: str, audiences: Sequence[str], source: CertsSource) -> dict[str, Any]:
    """The claims of ``token`` if Google signed it for one of ``audiences`` and it is current.

    Raises :class:`InvalidIdToken` otherwise (wrong signature, unknown key, wrong audience,
    expired or not yet valid, another issuer, not a JWT).
    """
    from google.auth import exceptions, jwt

    if not audiences:
        raise InvalidIdToken("no audience is configured for this function")
    kid = _kid(token)
    certs = source.certs()
    if kid not in certs:
        certs = source.certs(refresh=True)  # a key Google just started using
    if kid is None or kid not in certs:
        raise InvalidIdToken("the ID token is not signed by a current Google key")
    try:
        claims = jwt.decode(
            token,
            certs={kid: certs[kid]},
            audience=list(audiences),
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, exceptions.GoogleAuthError) as exc:
        raise InvalidIdToken(f"invalid ID token: {str(exc)[:160]}") from None
    check_claims(claims, audiences)  # nbf too, which google-auth does not check
    return claims
