"""ID tokens signed by a test RSA key, and a certificate source that publishes it as Google's
(what :class:`functions.google_id_token.GoogleCerts` would fetch from Google)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://europe-west1-proj.cloudfunctions.net/potability-samples"


class TestKey:
    """An RSA key, its self-signed certificate, and tokens signed with it."""

    __test__ = False

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.signer = crypt.RSASigner.from_string(pem, key_id=kid)

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "email": "regulator@example.org",
            "email_verified": True,
            "sub": "1234",
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(self.signer, payload).decode()


class FakeGoogleCerts:
    """A certificate source serving the given keys (counts its fetches)."""

    def __init__(self, *keys: TestKey) -> None:
        self.published: dict[str, str] = {k.kid: k.cert_pem for k in keys}
        self.fetches = 0

    def certs(self, refresh: bool = False) -> Mapping[str, str]:
        self.fetches += 1
        return dict(self.published)


def unsigned(token: str) -> str:
    """``token`` with an empty signature: nothing verified it."""
    return token.rsplit(".", 1)[0] + "."


def platform_stripped(token: str) -> str:
    """``token`` as Cloud Run forwards a token its IAM front end verified: the signature
    replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``
    (https://cloud.google.com/run/docs/troubleshooting#signature-removed)."""
    return token.rsplit(".", 1)[0] + ".SIGNATURE_REMOVED_BY_GOOGLE"


def json_of(part: str) -> dict[str, Any]:
    import base64

    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
