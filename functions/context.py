"""What every function instance shares, and the wrapper every request goes through.

:class:`Context` holds the instance's settings, its database pool and its endpoint client,
each created lazily on first use and then reused by every request (and thread) of the
instance. :func:`serve` turns the handler's outcome - an answer or an exception - into the
HTTP response and writes the structured log line, so handlers only deal with the happy path
and raise :class:`~functions.http.ApiError` for the rest.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import flask

from functions import request_log
from functions.endpoint import Endpoint, EndpointRejected, EndpointUnavailable, make_endpoint
from functions.http import ApiError, error_response, unavailable
from potability import alerts, db
from potability.config import Settings

T = TypeVar("T")


def retry_stale_connection(unit: Callable[[], T]) -> T:
    """Run a unit of database work, once more if the database failed it.

    After a database restart or failover every pooled connection is dead, and the pool finds
    out only by using one: the first failure makes the pool forget all of them
    (:meth:`potability.db.Pool.invalidate`), so the retry runs on a fresh connection. A
    transient failure (serialisation conflict, deadlock victim, no free connection slot, see
    :func:`potability.db.classify`) was rolled back and is worth one more try as well. If the
    database is really down the retry fails again at once and the client gets the 503. A pool
    that stayed exhausted for its whole wait is not retried: the client gets the 503 then.

    Safe because every unit is one transaction, idempotent by its key (the request id, the
    sample ids), even if the first attempt's commit reached the server before the link broke.
    """
    try:
        return unit()
    except db.DatabaseUnavailable as exc:
        if exc.failure is db.Failure.EXHAUSTED:  # nothing failed; another try only waits again
            raise
        return unit()


class Context:
    """One per function instance: settings plus lazily created, shared connections."""

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint: Endpoint | None = None,
        pool: db.Pool | None = None,
        google_certs: Any = None,
    ) -> None:
        self.settings = settings
        self.google_certs = google_certs
        """Google's ID-token certificates (``None``: the process-wide cache of
        :func:`functions.auth.default_certs`); tests inject their own key."""
        self._endpoint = endpoint
        self._pool = pool
        self._lock = threading.Lock()
        self._monitors: dict[str, alerts.ErrorRateMonitor] = {}
        self._shared: dict[str, Any] = {}
        self._regulator_hashes: Any = None

    @property
    def regulator_hashes(self) -> Any:
        """The accepted regulator tokens' hashes, re-read every 30 s
        (:class:`functions.regulator_tokens.TokenHashes`)."""
        if self._regulator_hashes is None:
            from functions.regulator_tokens import TokenHashes

            with self._lock:
                if self._regulator_hashes is None:
                    self._regulator_hashes = TokenHashes(self.settings)
        return self._regulator_hashes

    def error_monitor(self, function: str) -> alerts.ErrorRateMonitor:
        """This instance's 5xx-rate monitor of ``function`` (alert ``function_errors``)."""
        with self._lock:
            if function not in self._monitors:
                s = self.settings
                self._monitors[function] = alerts.ErrorRateMonitor(
                    s.alert_error_window_seconds, s.alert_error_rate, s.alert_error_min_requests
                )
            return self._monitors[function]

    def shared(self, name: str, create: Callable[[], T]) -> T:
        """The instance's ``name`` object (one per function that needs state of its own, e.g.
        the status page's cache and pool), created by ``create`` on first use."""
        with self._lock:
            if name not in self._shared:
                self._shared[name] = create()
            return self._shared[name]

    @property
    def pool(self) -> db.Pool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = db.Pool(self.settings, size=self.settings.db_pool_size)
        return self._pool

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            with self._lock:
                if self._endpoint is None:
                    self._endpoint = make_endpoint(self.settings)
        return self._endpoint

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        for item in self._shared.values():
            close = getattr(item, "close", None)
            if close is not None:
                close()


@dataclass
class Call:
    """Per-request facts a handler learns on the way (its id, what to add to the log)."""

    request_id: str | None = None
    log: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[flask.Request, Context, Call], flask.Response]
ErrorRenderer = Callable[[flask.Request, ApiError, "str | None"], flask.Response]
"""Turns a refusal into the response (default :func:`~functions.http.error_response`, JSON);
status uses its own to show browsers an HTML page for the same error."""


def _outcome(
    handler: Handler, request: flask.Request, ctx: Context, call: Call
) -> tuple[flask.Response | ApiError, str]:
    """The handler's response, or the :class:`ApiError` a failure maps to, and a log message."""
    try:
        return handler(request, ctx, call), "ok"
    except ApiError as exc:
        return exc, f"{exc.status} {exc.field}: {exc.message}"
    except db.DatabaseUnavailable as exc:
        call.log["cause"] = str(exc)[:300]
        if exc.sqlstate:
            call.log["sqlstate"] = exc.sqlstate
        return (
            unavailable("database", "the database is unavailable; nothing was written, retry"),
            "database unavailable",
        )
    except EndpointUnavailable as exc:
        call.log["cause"] = str(exc)[:300]
        return (
            unavailable(
                "endpoint", "the model endpoint is unavailable; nothing was written, retry"
            ),
            "endpoint unavailable",
        )
    except EndpointRejected as exc:
        call.log["cause"] = str(exc)[:300]
        return (
            ApiError(
                502, "endpoint", "the model endpoint gave no usable answer; nothing was written"
            ),
            "endpoint rejected",
        )
    except Exception as exc:  # noqa: BLE001 - a bug: answer 500, never crash the instance
        call.log["traceback"] = traceback.format_exc()[-4000:]
        return (
            ApiError(500, "server", f"internal error ({type(exc).__name__}); nothing was written"),
            "internal error",
        )


def serve(
    function: str,
    handler: Handler,
    request: flask.Request,
    ctx: Context,
    render_error: ErrorRenderer | None = None,
) -> flask.Response:
    """Run ``handler`` for one request: map failures to errors, log one line, time it."""
    started = time.perf_counter()
    call = Call()
    outcome, message = _outcome(handler, request, ctx, call)
    if isinstance(outcome, ApiError):
        response = (render_error or _json_error)(request, outcome, call.request_id)
    else:
        response = outcome
    if call.request_id:
        response.headers["X-Request-Id"] = call.request_id
    latency = time.perf_counter() - started
    request_log.emit(
        request_log.entry(
            function=function,
            method=request.method,
            url=request.url,
            status=response.status_code,
            latency_s=latency,
            request_id=call.request_id,
            message=f"{function}: {message}",
            trace=request_log.trace_field(
                request.headers.get("X-Cloud-Trace-Context"), ctx.settings.google_cloud_project
            ),
            extra=call.log,
            user_agent=request.headers.get("User-Agent"),
            remote_ip=request.remote_addr,
        )
    )
    if function in alerts.WATCHED_FUNCTIONS:
        alerts.observe_response(
            ctx.settings, ctx.error_monitor(function), function, response.status_code
        )
    return response


def _json_error(request: flask.Request, error: ApiError, request_id: str | None) -> flask.Response:
    return error_response(error, request_id)
