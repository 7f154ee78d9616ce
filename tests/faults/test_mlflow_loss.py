"""Fault (1): the team MLflow server (on PostgreSQL, serving its artifacts) is killed with -9
during a job's registration, at two chosen points: after the bundle's upload, before the version
exists; and after the version's creation, before the job registered it. The job ends failed
with one line; no version exists without its artifacts and tags, and the one the second fault
left behind unregistered is named and deleted by `jobs unregistered --delete`; after the server
is back, the retried job registers once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kernel_lifecycle.cli.ui import free_port
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import dispose_engines, session_scope
from kernel_lifecycle.registry import client as registry
from tests.faults.pausing import fault_at
from tests.jobs.test_crash_safety import _cli, tiny_kernel  # noqa: F401 - a fixture (asked for by name)
from tests.registry.team_server import REPO, wait_healthy
from tests.servers import stop_group


class Server:
    """registry/start-server.sh on one database, artifact root and port: killed and started again."""

    def __init__(self, root: Path, postgres_url: str) -> None:
        self.name = f"kl_mlflow_fault_{os.getpid()}_{time.monotonic_ns()}"
        self.admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.root, self.port, self.proc = root, free_port(), None
        self.env = {
            **os.environ,
            "MLFLOW_BACKEND_URI": make_url(postgres_url).set(database=self.name).render_as_string(hide_password=False),
            "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"), "MLFLOW_PORT": str(self.port), "MLFLOW_WORKERS": "1",
            "PYTHON": sys.executable, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.root / "server.log"
        with log.open("a") as out:
            self.proc = subprocess.Popen(["bash", str(REPO / "registry" / "start-server.sh")], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(f"{self.url}/health", self.proc, log)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture
def server(tmp_path: Path, postgres_url: str) -> Iterator[Server]:
    server = Server(tmp_path / "mlflow-server", postgres_url)
    server.root.mkdir()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def served_kernel(server: Server, kl_home, monkeypatch, request) -> dict[str, str]:  # noqa: ANN001
    """Kernel `tiny` v1 on the team server, the lifecycle DB on PostgreSQL; the env of a client."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    # a client that does not wait minutes for a server that is gone (MLflow retries 7 times by default)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    env = request.getfixturevalue("tiny_kernel")
    return {**env, "MLFLOW_TRACKING_URI": server.url}


def _run_job(env: dict[str, str]) -> subprocess.Popen:
    return _cli(["jobs", "downskill", "tiny", "--actor", "alice", "--steps", "2", "--eval-every", "2", "--json"], env)


def _versions() -> list[str]:
    return [kv.version for kv in registry.list_versions("tiny")]


def _fault(server: Server, env: dict[str, str], point: str, tmp_path: Path) -> tuple[str, str]:
    """Run a job that pauses at ``point``; kill the server there; let the job go on. Its stderr."""
    where = tmp_path / point
    where.mkdir()
    proc = _run_job({**env, registry.FAULT_PAUSE: point, registry.FAULT_DIR: str(where)})
    return fault_at(proc, where, point, server.kill)


def _last_job() -> tuple[str, str, str | None]:
    dispose_engines()
    with session_scope() as session:
        job = [j for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"][0]
        return job.id, job.state, job.error


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_server_killed_mid_registration(db_url, served_kernel, server, tmp_path) -> None:  # noqa: ANN001
    env = served_kernel
    assert _versions() == ["1"]

    # 1. after the upload, before the version: nothing is created
    line, _ = _fault(server, env, "registration.uploaded", tmp_path)
    assert "failed while tiny was being registered" in line and "no version was created" in line, line
    job_id, state, error = _last_job()
    assert state == "failed" and "no version was created" in error
    server.start()
    assert _versions() == ["1"]

    # 2. after the version, before the job registered it: the job fails naming it
    line, _ = _fault(server, env, "registration.created", tmp_path)
    assert "version 2 of tiny was created but not registered" in line and "jobs unregistered --delete" in line, line
    job_id, state, _ = _last_job()
    assert state == "failed"
    server.start()
    kv = registry.get_version("tiny", "2")  # whole: its artifacts, manifest and lineage are there
    assert kv.tags["kernel.job_id"] == job_id and kv.tags["kernel.parent_version"] == "1"
    assert (registry.fetch_bundle(kv) / "manifest.json").exists()
    with session_scope() as session:
        assert repo.get_alias(session, kernel="tiny", alias="candidate") in (None, "1")

    listed = _cli(["jobs", "unregistered", "--delete", "--json"], env)  # started once: _cli is a Popen
    out, err = listed.communicate(timeout=120)
    assert listed.returncode == 0, err
    assert json.loads(out) == [{"kernel": "tiny", "version": "2", "job_id": job_id, "job_state": "failed"}]
    assert _versions() == ["1"]

    # 3. the server is back: the retried job registers once
    proc = _run_job(env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    new = json.loads(out)["version"]
    assert _versions() == ["1", new]
    job_id, state, _ = _last_job()
    assert state == "registered"
    with session_scope() as session:
        assert repo.get_alias(session, kernel="tiny", alias="candidate") == new
