"""The CLI's side of team mode: each deciding action is a request to the lifecycle service.

The person's own MLflow credentials (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``,
or ``~/.mlflow/credentials``, read by MLflow's own ``read_mlflow_creds``) go in the request's
basic-auth header and nowhere else; the service proves them against MLflow. A refusal comes back
as the same error class and one line, so the CLI prints it like a local refusal.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from kernel_lifecycle import errors
from kernel_lifecycle.service.principals import AuthenticationError, basic_header

# a job submitted through the service runs before the answer comes back
TIMEOUT = 24 * 3600.0


def call(api_url: str, action: str, body: dict[str, Any], *, timeout: float = TIMEOUT) -> dict[str, Any]:
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    if not creds.username or not creds.password:
        raise AuthenticationError(
            "team mode (KL_API_URL is set) needs your own MLflow user: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, or put them in ~/.mlflow/credentials"
        )
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/v1/{action}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": basic_header(creds.username, creds.password), "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise _error_of(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise errors.ConfigurationError(f"cannot reach the lifecycle service at {api_url} (KL_API_URL): {exc}") from None


def _error_of(exc: urllib.error.HTTPError) -> errors.KernelLifecycleError:
    try:
        payload = json.loads(exc.read() or b"{}")
    except ValueError:
        payload = {}
    message = payload.get("error") or f"the lifecycle service answered {exc.code} {exc.reason}"
    kind = {"AuthenticationError": AuthenticationError}.get(payload.get("type", ""))
    kind = kind or getattr(errors, payload.get("type", ""), None)
    if not (isinstance(kind, type) and issubclass(kind, errors.KernelLifecycleError)):
        kind = errors.RefusedError
    return kind(message)
