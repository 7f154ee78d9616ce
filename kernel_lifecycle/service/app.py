"""`kernel-lifecycle serve`: the lifecycle API in front of the lifecycle DB (team mode).

``POST /v1/<action>`` with HTTP basic credentials and a JSON object body. The credentials are
proven against the MLflow server's user store (``principals.authenticate``), then the action runs
as that principal (``actions.perform(..., verified=True)``). Answers: 200 and the result; 401 for
credentials MLflow refused; 4xx with ``{"error": one line, "type": the error class}`` for a refusal
or bad input. Nothing is written before the principal is proven, so a refused login leaves no row.

The process holds the only lifecycle-DB URL (``KL_DATABASE_URL``) and the MLflow service
account's credentials (``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``~/.mlflow/credentials``),
from its environment or files, never from its command line. Requests' passwords are forwarded to
MLflow once and never stored; werkzeug's access log writes method, path and status only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from kernel_lifecycle import errors
from kernel_lifecycle.db.engine import ensure_current
from kernel_lifecycle.service.actions import ACTIONS, BadRequest, perform
from kernel_lifecycle.service.jobs import job_submit
from kernel_lifecycle.service.principals import AuthenticationError, authenticate
from kernel_lifecycle.settings import get_settings

log = logging.getLogger(__name__)

SERVED = {**ACTIONS, "job_submit": job_submit}

STATUS = {
    AuthenticationError: 401, BadRequest: 400, errors.NotFoundError: 404, errors.RefusedError: 409,
    errors.PolicyError: 422,
}


def _answer(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload, default=str), status=status, mimetype="application/json")


def _refusal(exc: errors.KernelLifecycleError) -> Response:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    headers = {"WWW-Authenticate": 'Basic realm="kernel-lifecycle"'} if status == 401 else {}
    response = _answer({"error": " ".join(str(exc).split()), "type": type(exc).__name__}, status)
    response.headers.update(headers)
    return response


def create_app(mlflow_url: str) -> Flask:
    app = Flask("kernel_lifecycle.service")

    @app.get("/health")
    def health() -> Response:
        return _answer({"ok": True, "actions": sorted(SERVED)})

    @app.post("/v1/<action>")
    def act(action: str) -> Response:
        try:
            auth = request.authorization
            if auth is None or auth.type != "basic":
                raise AuthenticationError("the request has no HTTP basic credentials (MLFLOW_TRACKING_USERNAME/PASSWORD)")
            principal = authenticate(mlflow_url, auth.username, auth.password)
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            result = perform(action, body, actor=principal, verified=True, actions=SERVED)
        except errors.KernelLifecycleError as exc:
            log.info("refused %s: %s", action, type(exc).__name__)
            return _refusal(exc)
        log.info("%s by %s", action, principal)
        return _answer(result)

    return app


def make_service(host: str, port: int) -> tuple[BaseWSGIServer, str]:
    """A threaded server for the app, after checking what team mode needs; returns it and the
    service account's own principal (its credentials proven like anyone's)."""
    from mlflow.utils.credentials import read_mlflow_creds

    settings = get_settings()
    mlflow_url = settings.tracking_uri
    if not mlflow_url.startswith(("http://", "https://")):
        raise errors.ConfigurationError(
            f"the lifecycle service needs MLFLOW_TRACKING_URI to be the team's MLflow server (http://...), not {mlflow_url}"
        )
    creds = read_mlflow_creds()
    if not creds.username or not creds.password:
        raise errors.ConfigurationError(
            "the lifecycle service runs as the MLflow service account: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD in its environment, or put them in its ~/.mlflow/credentials"
        )
    service_principal = authenticate(mlflow_url, creds.username, creds.password)
    ensure_current()
    return make_server(host, port, create_app(mlflow_url), threaded=True), service_principal
