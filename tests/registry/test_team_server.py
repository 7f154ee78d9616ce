"""The team deployment: registry/start-server.sh on loopback against the local PostgreSQL, and
the CLI driven through it (MLFLOW_TRACKING_URI=http://127.0.0.1:PORT)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle import aliases
from kernel_lifecycle.cli.ui import free_port
from kernel_lifecycle.settings import get_settings
from tests.factories import make_bundle, make_tiny_base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("the team deployment test needs PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_URL

    name = f"kl_mlflow_{os.getpid()}_{int(time.time())}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    port = free_port()
    root = tmp_path_factory.mktemp("server")
    env = {
        **os.environ,
        "MLFLOW_BACKEND_URI": make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False),
        "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        # MLflow's GenAI job runner (4 more processes) is not what this tests; see registry/README.md
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        ["bash", str(REPO / "registry" / "start-server.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # first start migrates MLflow's schema: slow on a loaded CI machine
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"MLflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_cli_through_the_team_server(cli, postgres_url, kl_home, monkeypatch, mlflow_server, tmp_path) -> None:
    from kernel_lifecycle.db.engine import upgrade

    monkeypatch.setenv("KL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    get_settings.cache_clear()
    upgrade()
    base = make_tiny_base(tmp_path / "base")
    for version, parent in (("1", None), ("2", "1"), ("3", "2")):
        bundle = make_bundle(tmp_path / f"v{version}", parent=parent, job_id=f"job-{version}", base_dir=base)
        code, out, err = cli("kernels", "register", bundle, "--json")
        assert code == 0, err
        registered = json.loads(out)
        assert registered["version"] == version
        assert registered["source"].startswith("runs:/")

    code, out, _ = cli("kernels", "lineage", "demo-kernel@3")
    assert code == 0 and "v3 -> v2 -> v1" in out

    from kernel_lifecycle.db.engine import session_scope
    from kernel_lifecycle.registry import client as registry

    with session_scope() as session:
        aliases.move_alias(session, name="demo-kernel", alias="champion", version="3", actor="ops", reason="release")
    code, out, err = cli("kernels", "rollback", "demo-kernel", "--to", "1", "--reason", "incident 42", "--actor", "bob", "--json")
    assert code == 0, err
    # MLflow (through the server) and the lifecycle DB agree on the champion
    with urllib.request.urlopen(
        f"{mlflow_server}/api/2.0/mlflow/registered-models/alias?name=demo-kernel&alias=champion", timeout=10
    ) as response:
        assert json.load(response)["model_version"]["version"] == "1"
    # artifacts come back through the server's proxy, verified
    local = registry.fetch_bundle(registry.resolve("demo-kernel@2"))
    assert (local / "manifest.json").is_file()
