"""One configured MLflow client for the whole process (tracking and registry on the same store).

With the embedded default (SQLite under KL_HOME) artifacts go to ``KL_HOME/mlartifacts``; with a
tracking server the server decides where artifacts live.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

EXPERIMENT = "kernel-lifecycle"


def _quiet_mlflow() -> None:
    # MLflow's own store migrations and run links are noise on a CLI's stderr.
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@lru_cache(maxsize=4)
def _client_for(uri: str) -> MlflowClient:
    import mlflow  # heavy (seconds): only when a command talks to the store
    from mlflow import MlflowClient

    _quiet_mlflow()

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def client() -> MlflowClient:
    settings = get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        settings.ensure_home()
    try:
        return _client_for(uri)
    # broad on purpose: opening a store can fail in MLflow, SQLAlchemy, Alembic or the HTTP
    # client; each becomes one ConfigurationError naming the store (its traceback at DEBUG)
    except Exception as exc:  # noqa: BLE001
        logger.debug("opening the MLflow store %s failed", uri, exc_info=True)
        raise ConfigurationError(f"cannot open the MLflow store {uri}: {exc}") from None


def experiment_id(name: str = EXPERIMENT) -> str:
    """The experiment for kernel jobs, created on first use with a KL_HOME artifact root."""
    mlflow_client = client()
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    settings = get_settings()
    location = None
    if settings.tracking_uri.startswith("sqlite:") or "://" not in settings.tracking_uri:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.as_uri()
    from mlflow.exceptions import MlflowException  # mlflow is loaded by client() already

    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # RESOURCE_ALREADY_EXISTS: created concurrently by another process
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        logger.debug("experiment %s was created concurrently by another process", name)
        return found.experiment_id
