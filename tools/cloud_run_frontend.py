#!/usr/bin/env python3
"""A local stand-in for what Google's front end does to a request for an IAM-protected Cloud
Run service (a 2nd-gen Cloud Function is one), so the functions are tested behind it.

What it models, and the Google page each part follows:

* **Who may call** (https://cloud.google.com/run/docs/authenticating/overview,
  https://cloud.google.com/run/docs/securing/managing-access): a service whose ``roles/run.invoker``
  members include ``allUsers`` is public - the request passes untouched. Otherwise the request
  must carry a Google-signed ID token as ``Authorization: Bearer`` or, if present,
  ``X-Serverless-Authorization: Bearer`` (that header wins, and ``Authorization`` then passes
  through unchecked: https://cloud.google.com/run/docs/authenticating/service-to-service).
* **Which tokens** (https://cloud.google.com/run/docs/authenticating/service-to-service,
  "audience"): signed by Google (here: the test issuer's key, published to the emulator only),
  issuer ``accounts.google.com``, not expired, and ``aud`` one of the service's URLs - the
  deterministic ``https://SERVICE-PROJECT_NUMBER.REGION.run.app`` and, for a function,
  ``https://REGION-PROJECT.cloudfunctions.net/FUNCTION``
  (https://cloud.google.com/run/docs/triggering/https-request#deterministic,
  https://cloud.google.com/functions/docs/calling/http) - or, for a person's own token from
  ``gcloud auth print-identity-token``, gcloud's client id
  (https://cloud.google.com/run/docs/authenticating/developers). A token Google cannot verify is
  answered ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"``; no token, or a
  verified caller who is not an invoker, ``403`` "Your client does not have permission"
  (https://cloud.google.com/run/docs/troubleshooting, "401" and "403 Forbidden"). The body is
  Google's HTML error page, never the function's JSON.
* **Who is an invoker**: the IAM members Terraform binds on each service
  (``google_cloud_run_service_iam_member.invoker``, read from Terraform's rendered
  configuration by the tests, never from a hand-kept list): ``serviceAccount:`` and ``user:``
  match the token's ``email``; ``group:`` through a directory of group members (Cloud
  Identity's part, given by the test); ``allAuthenticatedUsers`` any verified token.
* **What the function receives** (https://cloud.google.com/run/docs/troubleshooting#signature-removed,
  https://cloud.google.com/run/docs/container-contract#request-headers,
  https://cloud.google.com/trace/docs/trace-context): the checked header's token with its
  signature replaced by ``SIGNATURE_REMOVED_BY_GOOGLE``; ``X-Forwarded-For`` (the client
  address), ``X-Forwarded-Proto: https``, ``X-Cloud-Trace-Context`` and ``traceparent``.
* **Size**: requests over Cloud Run's 32 MiB HTTP/1 request limit are refused with 413 by the
  front end (https://cloud.google.com/run/quotas, "Maximum HTTP/1 request size").

Not modelled: ingress settings, custom audiences, IAP, HTTP/2, Google's own rate limits.

Run by hand (prints one issuer certificate and each service's local URL)::

    python tools/cloud_run_frontend.py --service predict=http://127.0.0.1:8081 \
        --invoker predict=serviceAccount:sensor@p.iam.gserviceaccount.com \
        --project test-project --number 123456789012 --region europe-west1

and mint tokens with :meth:`Issuer.id_token` (``--token EMAIL AUDIENCE`` prints one).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PLATFORM_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
ISSUER = "https://accounts.google.com"
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"
"""``aud`` of ``gcloud auth print-identity-token`` run without ``--audiences`` (gcloud's own
OAuth client): Cloud Run refuses such a token for a service (wrong audience)."""
MAX_REQUEST_BYTES = 32 * 1024 * 1024
CLOCK_SKEW_SECONDS = 30
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


def service_urls(name: str, project: str, number: str, region: str) -> tuple[str, ...]:
    """The URLs a gen2 function ``name`` answers on: its deterministic run.app URL and its
    cloudfunctions.net URL - the audiences Cloud Run accepts for it."""
    return (
        f"https://{name}-{number}.{region}.run.app",
        f"https://{region}-{project}.cloudfunctions.net/{name}",
    )


@dataclass(frozen=True)
class Service:
    name: str
    upstream: str
    """Where the function listens (``http://127.0.0.1:PORT``)."""
    audiences: tuple[str, ...]
    invokers: frozenset[str]
    """IAM members holding ``roles/run.invoker`` on the service."""

    @property
    def public(self) -> bool:
        return "allUsers" in self.invokers


@dataclass
class Directory:
    """Group membership (Cloud Identity's part): group e-mail -> member e-mails."""

    groups: dict[str, set[str]] = field(default_factory=dict)

    def members_of(self, email: str) -> set[str]:
        kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
        found = {f"{kind}:{email}", "allAuthenticatedUsers", "allUsers"}
        found |= {f"group:{g}" for g, members in self.groups.items() if email in members}
        return found


class Issuer:
    """Google's token service for tests: one RSA key, its certificate, ID tokens signed
    with it (the shape ``gcloud auth print-identity-token --impersonate-service-account=SA
    --audiences=URL --include-email`` prints)."""

    def __init__(self, kid: str | None = None) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        from google.auth import crypt

        self.kid = kid or secrets.token_hex(20)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._signer = crypt.RSASigner.from_string(pem, key_id=self.kid)

    def certs(self) -> dict[str, str]:
        return {self.kid: self.cert_pem}

    def id_token(
        self, email: str, audience: str = GCLOUD_CLIENT_ID, lifetime: int = 3600, **claims: Any
    ) -> str:
        from google.auth import jwt

        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "azp": email,
            "sub": str(abs(hash(email)) % 10**21),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime,
            **claims,
        }
        return jwt.encode(
            self._signer, {k: v for k, v in payload.items() if v is not None}
        ).decode()


@dataclass(frozen=True)
class Verdict:
    """What the front end does with one request: answer it itself, or forward it."""

    status: int | None
    """Set: the front end answers with this status (Google's error page). None: forward."""
    headers: dict[str, str]
    """Forward: the headers the function receives. Refuse: the answer's headers."""
    caller: str = ""


def _error_page(status: int, path: str) -> str:
    title, text = {
        401: ("401 Unauthorized", "Error: Unauthorized"),
        403: ("403 Forbidden", "Error: Forbidden"),
        413: ("413 Request Entity Too Large", "Error: Request Entity Too Large"),
    }[status]
    detail = (
        f"Your client does not have permission to get URL <code>{path}</code> from this server."
        if status in (401, 403)
        else "Your client issued a request that was too large."
    )
    return (
        '<html><head>\n<meta http-equiv="content-type" content="text/html;charset=utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n"
        f"<h1>{text}</h1>\n<h2>{detail}</h2>\n<h2></h2>\n</body></html>\n"
    )


def _claims(token: str, certs: Mapping[str, str], audiences: Iterable[str]) -> dict[str, Any]:
    """The claims of a Google-signed ID token for one of ``audiences``; ValueError otherwise.

    A person's token from ``gcloud auth print-identity-token`` (audience: gcloud's own client
    id) is accepted too - Cloud Run documents exactly that command for developers
    (https://cloud.google.com/run/docs/authenticating/developers) - but only for user accounts;
    the function behind still checks the audience is its own."""
    from google.auth import exceptions, jwt

    try:
        kid = jwt.decode_header(token).get("kid")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed token: {exc}") from None
    if kid not in certs:
        raise ValueError("not signed by a current Google key")
    try:
        claims = jwt.decode(
            token,
            certs={kid: certs[kid]},
            audience=[*audiences, GCLOUD_CLIENT_ID],
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, exceptions.GoogleAuthError) as exc:
        raise ValueError(str(exc)) from None
    person = not str(claims.get("email", "")).endswith(".gserviceaccount.com")
    if claims.get("aud") == GCLOUD_CLIENT_ID and not person:
        raise ValueError("a service account's token must name the service as its audience")
    if claims.get("iss") not in (ISSUER, "accounts.google.com"):
        raise ValueError("not issued by Google")
    return claims


def decide(
    service: Service,
    headers: Mapping[str, str],
    client: str,
    certs: Mapping[str, str],
    directory: Directory,
    body_bytes: int = 0,
) -> Verdict:
    """The front end's decision for one request (pure: no I/O), and the headers forwarded."""
    lower = {k.lower(): v for k, v in headers.items()}
    if body_bytes > MAX_REQUEST_BYTES:
        return Verdict(413, {"Content-Type": "text/html; charset=UTF-8"})
    forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
    caller = ""
    if not service.public:
        name = (
            "X-Serverless-Authorization"
            if "x-serverless-authorization" in lower
            else "Authorization"
        )
        value = lower.get(name.lower(), "")
        scheme, _, token = value.partition(" ")
        if not value:
            return Verdict(403, {"Content-Type": "text/html; charset=UTF-8"})
        try:
            if scheme.lower() != "bearer" or token.count(".") != 2:
                raise ValueError("not a bearer ID token")
            claims = _claims(token.strip(), certs, service.audiences)
        except ValueError:
            return Verdict(
                401,
                {
                    "Content-Type": "text/html; charset=UTF-8",
                    "WWW-Authenticate": 'Bearer error="invalid_token" '
                    'error_description="The access token could not be verified"',
                },
            )
        caller = str(claims.get("email", ""))
        if not (directory.members_of(caller) & service.invokers):
            return Verdict(403, {"Content-Type": "text/html; charset=UTF-8"}, caller)
        head, payload, _ = token.strip().split(".")
        forwarded = {k: v for k, v in forwarded.items() if k.lower() != name.lower()}
        forwarded[name] = f"Bearer {head}.{payload}.{PLATFORM_SIGNATURE}"
    trace, span = secrets.token_hex(16), int.from_bytes(secrets.token_bytes(8), "big")
    prior = lower.get("x-forwarded-for")
    forwarded.update(
        {
            "X-Forwarded-For": f"{prior}, {client}" if prior else client,
            "X-Forwarded-Proto": "https",
            "X-Cloud-Trace-Context": f"{trace}/{span};o=1",
            "traceparent": f"00-{trace}-{span:016x}-01",
        }
    )
    return Verdict(None, forwarded, caller)


class FrontEnd:
    """One loopback listener per service, each forwarding what :func:`decide` lets through.

    Records every exchange (service, status, caller) in :attr:`log` for the tests."""

    def __init__(
        self, services: Iterable[Service], certs: Mapping[str, str], directory: Directory
    ) -> None:
        self.services = list(services)
        self.certs = dict(certs)
        self.directory = directory
        self.urls: dict[str, str] = {}
        self.log: list[tuple[str, int, str]] = []
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []

    def _app(self, service: Service) -> Any:
        import httpx
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        upstream = httpx.AsyncClient(base_url=service.upstream, timeout=70.0)

        async def handle(request: Request) -> Response:
            body = await request.body()
            client = request.client.host if request.client else "127.0.0.1"
            verdict = decide(
                service, dict(request.headers), client, self.certs, self.directory, len(body)
            )
            if verdict.status is not None:
                self.log.append((service.name, verdict.status, verdict.caller))
                return Response(
                    _error_page(verdict.status, request.url.path),
                    verdict.status,
                    headers=verdict.headers,
                )
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            answer = await upstream.request(
                request.method, path, headers=verdict.headers, content=body
            )
            self.log.append((service.name, answer.status_code, verdict.caller))
            headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            headers.pop("content-encoding", None)
            return Response(answer.content, answer.status_code, headers=headers)

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
        return Starlette(
            routes=[
                Route("/", handle, methods=methods),
                Route("/{path:path}", handle, methods=methods),
            ]
        )

    def start(self) -> dict[str, str]:
        """Listen on loopback, one port per service; return ``{service name: local URL}``."""
        import socket

        import uvicorn

        for service in self.services:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            config = uvicorn.Config(self._app(service), log_level="warning", lifespan="off")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
            self.urls[service.name] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline:
                raise TimeoutError("the front end did not start within 10 s")
            time.sleep(0.02)
        return dict(self.urls)

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FrontEnd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", type=_pair, action="append", default=[], metavar="NAME=URL")
    parser.add_argument("--invoker", type=_pair, action="append", default=[], metavar="NAME=MEMBER")
    parser.add_argument("--member", type=_pair, action="append", default=[], metavar="GROUP=EMAIL")
    parser.add_argument("--project", default="test-project")
    parser.add_argument("--number", default="123456789012")
    parser.add_argument("--region", default="europe-west1")
    parser.add_argument("--token", nargs=2, metavar=("EMAIL", "AUDIENCE"))
    args = parser.parse_args(argv)
    issuer = Issuer()
    if args.token:
        print(issuer.id_token(args.token[0], args.token[1]))
    directory = Directory()
    for group, email in args.member:
        directory.groups.setdefault(group, set()).add(email)
    services = [
        Service(
            name,
            url,
            service_urls(name, args.project, args.number, args.region),
            frozenset(m for n, m in args.invoker if n == name),
        )
        for name, url in args.service
    ]
    with FrontEnd(services, issuer.certs(), directory) as front:
        print(json.dumps({"urls": front.urls, "certs": issuer.certs()}, indent=2), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def token_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT - for tests reading what a function received."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


if __name__ == "__main__":
    raise SystemExit(main())
