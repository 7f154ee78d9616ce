"""The team deployment: registry/start-server.sh on loopback against the local PostgreSQL, and
the CLI driven through it (MLFLOW_TRACKING_URI=http://127.0.0.1:PORT)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from kernel_lifecycle import aliases
from kernel_lifecycle.settings import get_settings
from tests.factories import make_bundle, make_tiny_base
from tests.registry.team_server import team_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("the team deployment test needs PostgreSQL")
    from tests.conftest import POSTGRES_URL

    try:
        with team_server(tmp_path_factory.mktemp("server"), POSTGRES_URL) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


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
