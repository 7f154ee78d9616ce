"""Team mode on loopback: MLflow's basic-auth app on PostgreSQL, the guard's webhook installed,
`guard serve` running as the lifecycle's service account. A READ user's alias move is refused
(403); an admin's move through REST is reverted within 10 s with an audit row; the lifecycle's
own promotions, racing the guard, are never reverted."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.cli.ui import free_port
from kernel_lifecycle.settings import get_settings
from tests.factories import make_bundle, make_tiny_base
from tests.registry.team_server import REPO, team_server, wait_healthy
from tests.servers import basic_auth_env

KERNEL = "demo-kernel"
REVERT_DEADLINE = 10.0  # the bar: an admin's move is put back within 10 s
SERVER_LOG: Path | None = None  # the MLflow server's log, printed when the test ends
USERS = {name: secrets.token_urlsafe(16) for name in ("admin", "kl-service", "alice")}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("team mode needs PostgreSQL")
    from tests.conftest import POSTGRES_URL

    root = tmp_path_factory.mktemp("auth-server")
    env = basic_auth_env(root, USERS["admin"])
    global SERVER_LOG
    SERVER_LOG = root / "server.log"
    try:
        with team_server(root, POSTGRES_URL, env) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _as(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS[user])


def _rest(url: str, user: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A raw REST call, as the UI's alias editor makes it."""
    token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _champion(url: str) -> str | None:
    code, body = _rest(url, "admin", "GET", f"registered-models/alias?name={KERNEL}&alias=champion")
    return body["model_version"]["version"] if code == 200 else None


def _guard_health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return json.load(response)


def _wait(predicate, deadline: float, what: str):  # noqa: ANN001, ANN202
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline:g} s: {what}")
        time.sleep(0.25)


def _reverted() -> list:
    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope

    with session_scope() as session:
        return repo.list_audit(session, kernel=KERNEL, actions=("alias_reverted",))


def test_team_mode_refuses_reads_reverts_admins_and_never_the_lifecycle(
    cli, capsys, auth_server: str, postgres_url: str, kl_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope, upgrade
    from kernel_lifecycle import aliases
    from kernel_lifecycle.registry import client as registry
    from tests.guard.racing import race_promotions

    guard_secret = secrets.token_hex(16)
    monkeypatch.setenv("KL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server)
    monkeypatch.setenv("KL_GUARD_SECRET", guard_secret)
    get_settings.cache_clear()
    upgrade()
    _as(monkeypatch, "admin")
    auth = AuthServiceClient(auth_server)
    for user in ("kl-service", "alice"):
        auth.create_user(user, USERS[user])

    # the guard, as the service account, in its own process
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_USERNAME": "kl-service",
        "MLFLOW_TRACKING_PASSWORD": USERS["kl-service"],
    }
    log = tmp_path / "guard.log"
    with log.open("w") as out:
        guard = subprocess.Popen(
            [sys.executable, "-m", "kernel_lifecycle.cli", "guard", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", guard, log, deadline=120)
        hook_url = f"http://127.0.0.1:{port}/webhook"
        code, out, err = cli("guard", "install", "--url", hook_url, "--json")
        assert code == 0, err
        assert json.loads(out)["action"] == "created"
        code, out, err = cli("guard", "install", "--url", hook_url, "--json")
        assert code == 0 and json.loads(out)["action"] == "updated", err

        # the lifecycle's service account registers the kernel (and so holds MANAGE on it)
        _as(monkeypatch, "kl-service")
        base = make_tiny_base(tmp_path / "base")
        for version, parent in (("1", None), ("2", "1"), ("3", "2")):
            registry.register_version(make_bundle(tmp_path / f"v{version}", parent=parent, base_dir=base))
        with session_scope() as session:
            aliases.move_alias(session, name=KERNEL, alias="champion", version="3", actor="ops", reason="release")
        _wait(lambda: _guard_health(port)["deliveries"] >= 1, 30, "the guard received the promotion's webhook")
        assert _guard_health(port)["reverted"] == 0 and _champion(auth_server) == "3"

        # a READ user cannot move the alias at all
        move = {"name": KERNEL, "alias": "champion", "version": "1"}
        assert _rest(auth_server, "alice", "POST", "registered-models/alias", move)[0] == 403
        assert _champion(auth_server) == "3"

        # an admin can, through REST, as the UI's "Promote model" does: the guard puts it back
        started = time.monotonic()
        assert _rest(auth_server, "admin", "POST", "registered-models/alias", move)[0] == 200
        _wait(lambda: _champion(auth_server) == "3" and _reverted(), REVERT_DEADLINE, "the admin's move reverted")
        timings = {"admin's move reverted after (s)": round(time.monotonic() - started, 2)}
        [row] = _reverted()
        assert (row.from_version, row.to_version, row.details["source"]) == ("1", "3", "webhook")
        assert row.details["event"] == "model_version_alias.created"

        # deleting the alias is a move too
        started = time.monotonic()
        assert _rest(auth_server, "admin", "DELETE", "registered-models/alias", {"name": KERNEL, "alias": "champion"})[0] == 200
        _wait(lambda: _champion(auth_server) == "3" and len(_reverted()) == 2, REVERT_DEADLINE, "the deleted alias restored")
        timings["admin's delete restored after (s)"] = round(time.monotonic() - started, 2)

        code, out, _ = cli("kernels", "audit", KERNEL, "--reverted", "--json")
        # the delivery that finds the deletion first reports it: the delete's own, or the one of the
        # guard's previous revert when that arrives later
        assert [(r["from"], r["to"], r["details"]["source"]) for r in json.loads(out)] == [
            (None, "3", "webhook"),
            ("1", "3", "webhook"),
        ]

        # racing promotions while the guard serves webhooks and an interval check runs
        # so far: the promotion, the admin's move, its revert, the admin's delete, its restore
        before = _wait(lambda: (h := _guard_health(port))["deliveries"] >= 5 and h, 60, "earlier deliveries handled")
        race = race_promotions(KERNEL, rounds=6)
        assert race.won >= 6 and race.guard_rounds >= 1 and not race.guard_repaired and not race.guard_remaining
        # every promotion's webhook handled, none of them reverted
        _wait(lambda: _guard_health(port)["deliveries"] >= before["deliveries"] + race.won, 60, "the race's webhooks handled")
        assert _guard_health(port)["reverted"] == before["reverted"]
        assert len(_reverted()) == 2
        with session_scope() as session:
            assert _champion(auth_server) == repo.get_alias(session, kernel=KERNEL, alias="champion")
        timings["promotions won in the race"] = race.won
        with capsys.disabled():
            print(f"\nteam guard: {timings}")
    finally:
        os.killpg(guard.pid, 15)
        guard.wait(timeout=30)
        with capsys.disabled():
            print("guard log:\n" + log.read_text()[-4000:])
            print("MLflow server log:\n" + "\n".join(
                line for line in SERVER_LOG.read_text().splitlines() if "webhook" in line.lower() or "error" in line.lower()
            )[-3000:])
