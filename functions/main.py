"""Entry points of the Cloud Functions (2nd gen), run by ``functions-framework``.

    functions-framework --source functions/main.py --target predict      # inference
    functions-framework --source functions/main.py --target add_sample   # lab samples
    functions-framework --source functions/main.py --target status       # status page

On GCP the source root's ``main.py`` re-exports these (``terraform/function_source``). Each
instance builds one :class:`~functions.context.Context` from the environment on its first
request (``load_settings``: the same variable names Terraform and ``potability
functions`` set), so the database pool and the endpoint session are created once and reused.
The request and response shapes are published in ``functions/openapi.yaml``.
"""

from __future__ import annotations

import threading

import flask
import functions_framework

from functions import gunicorn_worker
from functions import predict as _predict
from functions import samples as _samples
from functions import status as _status
from functions.context import Context, serve
from potability.config import load_settings

gunicorn_worker.install()  # before functions-framework builds its server: see that module

_context: Context | None = None
_context_lock = threading.Lock()


def context() -> Context:
    """This instance's shared context, created on first use."""
    global _context
    if _context is None:
        with _context_lock:
            if _context is None:
                _context = Context(load_settings())
    return _context


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    """Inference for one reading or a batch; every answer is logged before it is sent."""
    return serve(_predict.FUNCTION, _predict.handle, request, context())


@functions_framework.http
def add_sample(request: flask.Request) -> flask.Response:
    """Certified lab samples from authorised regulators into the training table."""
    return serve(_samples.FUNCTION, _samples.handle, request, context())


@functions_framework.http
def status(request: flask.Request) -> flask.Response:
    """The public status page (HTML, or JSON on request); read-only."""
    return serve(_status.FUNCTION, _status.handle, request, context(), _status.render_error)
