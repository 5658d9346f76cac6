"""The regulator tokens' hashes add_sample accepts, re-read so a revocation takes effect within
:data:`REFRESH_SECONDS` - without restarting an instance.

Where the hashes live:

* **GCP** (``SAMPLES_TOKEN_SECRET`` = ``projects/P/secrets/S``): the latest version of that
  Secret Manager secret (comma-separated sha256 digests), read with the function's own service
  account (:func:`potability.gcp.secret_manager.access_secret`). Rotation: add a new version without
  the revoked digest (``gcloud secrets versions add``, or Terraform's ``samples_token_sha256``);
  docs/security.md.
* **Locally** (``SAMPLES_TOKEN_SECRET=file:<home>/env``, set by ``potability functions``):
  ``SAMPLES_TOKEN_SHA256`` in the stack's env file, which ``potability samples tokens
  add|revoke`` edits.
* Otherwise (tests, a plain environment): ``Settings.samples_token_sha256`` as configured.

A failed read keeps the last hashes known (a Secret Manager hiccup must not lock regulators
out); with none known yet it fails closed (no token is accepted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from potability import config
from potability.config import Settings

REFRESH_SECONDS = 30.0
FILE_PREFIX = "file:"
log = logging.getLogger(__name__)


def parse_hashes(text: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in text.split(",") if h.strip())


class TokenHashes:
    """The current hashes, cached for :data:`REFRESH_SECONDS` (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        read_secret: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read_secret = read_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._hashes: tuple[str, ...] | None = None
        self._read_at = 0.0

    def _read(self) -> tuple[str, ...]:
        s = self._settings
        if s.samples_token_secret.startswith(FILE_PREFIX):
            path = Path(s.samples_token_secret[len(FILE_PREFIX) :])
            return parse_hashes(config.read_env(path.parent).get("SAMPLES_TOKEN_SHA256", ""))
        if s.samples_token_secret:
            if self._read_secret is None:
                from potability.gcp.secret_manager import access_secret

                self._read_secret = access_secret
            return parse_hashes(self._read_secret(s.samples_token_secret))
        return s.samples_token_sha256

    def current(self) -> tuple[str, ...]:
        now = self._clock()
        with self._lock:
            if self._hashes is None or now - self._read_at >= REFRESH_SECONDS:
                try:
                    self._hashes = self._read()
                except Exception:  # keep the last known hashes, log it
                    log.exception("could not re-read the regulator token hashes")
                    if self._hashes is None:
                        self._hashes = ()
                self._read_at = now
            return self._hashes
