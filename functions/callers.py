"""Who calls predict, and which sensor ids that caller may write (``water_inferences.caller``).

The inference log feeds live quality control, precision flags, alerts and the public
per-sensor figures, so a reading is only as trustworthy as the claim that it came from its
``sensor_id``. A caller is bound to the ids configured for it; anything else is 403 naming
``sensor_id`` (and nothing is written). The identity computed here - :func:`predict_caller` -
is the one value handed to the inference writer and stored with every row.

* **On GCP** (``PREDICT_ID_TOKEN_AUDIENCE`` set): the caller is the ``email`` of the Google ID
  token in ``Authorization``, verified as the samples function verifies its regulators
  (:mod:`functions.google_id_token`; ``X-Serverless-Authorization`` refused, see
  :mod:`functions.auth`). ``PREDICT_SENSOR_BINDINGS`` (Terraform's ``sensor_bindings``: service
  account -> sensor ids) says what it may write; an account with no binding writes nothing.
* **Locally**, with ``SENSOR_TOKEN_BINDINGS`` set (sha256 of a sensor token -> sensor ids), a
  sensor presents ``Authorization: Bearer <token>`` and is recorded as ``token:<8 hex>``.
  Without it the local predict function is open, as before, and records the caller
  :data:`LOCAL_OPEN_CALLER` (docs/security.md).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from functions import auth, google_id_token
from functions.http import ApiError
from potability.config import Settings, token_sha256

LOCAL_OPEN_CALLER = "local:unauthenticated"


@dataclass(frozen=True)
class Caller:
    identity: str
    """What is stored with every inference of the request (never a secret)."""
    sensor_ids: frozenset[str] | None
    """The sensor ids it may write; ``None``: any (the open local mode only)."""

    def require_sensor(self, sensor_id: str) -> None:
        if self.sensor_ids is not None and sensor_id not in self.sensor_ids:
            raise ApiError(
                403, "sensor_id", f"caller {self.identity} may not write sensor_id {sensor_id!r}"
            )


def predict_caller(
    headers: auth.RequestHeaders,
    settings: Settings,
    certs: google_id_token.CertsSource | None = None,
) -> Caller:
    """The verified caller of a predict request, or an :class:`ApiError` (401/403)."""
    if settings.predict_id_token_audience:
        if headers.get(auth.SERVERLESS_HEADER) is not None:
            raise ApiError(
                401,
                auth.SERVERLESS_HEADER,
                "send the ID token in Authorization only",
                {"WWW-Authenticate": "Bearer"},
            )
        email = auth.id_token_email(
            auth.bearer(headers),
            settings.predict_id_token_audience,
            certs or auth.default_certs(),
            settings.id_token_platform_verified,
        )
        bound = dict(settings.predict_sensor_bindings).get(email)
        if bound is None:
            raise ApiError(
                403,
                "Authorization",
                f"{email} is not bound to any sensor (PREDICT_SENSOR_BINDINGS)",
            )
        return Caller(email, frozenset(bound))
    if settings.sensor_token_bindings:
        digest = token_sha256(auth.bearer(headers))
        found = None
        for known, ids in settings.sensor_token_bindings:  # constant time for each hash
            if hmac.compare_digest(digest, known):
                found = ids
        if found is None:
            raise ApiError(403, "Authorization", "not an authorised sensor token")
        return Caller(f"token:{digest[:8]}", frozenset(found))
    return Caller(LOCAL_OPEN_CALLER, None)
