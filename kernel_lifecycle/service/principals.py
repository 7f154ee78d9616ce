"""Who is asking: a principal proven by MLflow's basic-auth user store, never a typed name.

The service asks the MLflow server ``GET /api/2.0/mlflow/users/current`` *as the person* (their
basic credentials, forwarded once, never stored or logged): MLflow checks the password against its
own users (werkzeug password hashes) and answers with the username, or 401. The same users and
passwords as the MLflow UI, one store, no copy of it here.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from kernel_lifecycle.errors import ConfigurationError, KernelLifecycleError

CURRENT_USER = "/api/2.0/mlflow/users/current"
TIMEOUT = 30.0


class AuthenticationError(KernelLifecycleError):
    """The credentials were missing or MLflow did not accept them."""


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def authenticate(mlflow_url: str, username: str | None, password: str | None) -> str:
    """The principal MLflow's user store proves ``username``/``password`` to be (its username)."""
    if not username or not password:
        raise AuthenticationError(
            "no credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials) "
            "to your own MLflow user"
        )
    request = urllib.request.Request(
        mlflow_url.rstrip("/") + CURRENT_USER, headers={"Authorization": basic_header(username, password)}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise AuthenticationError(
                f"MLflow did not accept the password of user {username!r}; check MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD"
            ) from None
        raise ConfigurationError(
            f"MLflow at {mlflow_url} answered {exc.code} to {CURRENT_USER}: the lifecycle service needs the MLflow "
            "server's basic-auth app (MLFLOW_APP_NAME=basic-auth, registry/README.md)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigurationError(f"cannot reach MLflow at {mlflow_url} to check credentials: {exc}") from None
    try:
        return str(data["user"]["username"])
    except (KeyError, TypeError):
        raise ConfigurationError(f"MLflow at {mlflow_url} answered {CURRENT_USER} without a user") from None
