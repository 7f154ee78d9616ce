"""Team mode with identities proven by authentication: an MLflow server with the basic-auth app on
PostgreSQL, the lifecycle DB on PostgreSQL, and `kernel-lifecycle serve` (the lifecycle service) in
front of it as the service account, all on loopback and started here. People run the real CLI with
KL_API_URL and their own MLflow credentials, and no lifecycle-DB URL at all.

One ordered story in one test (one server pair per worker): alice (owner, approver) applies the
policy and approves; bob (neither) is refused, with his own password and when he types
`--actor alice`; a wrong password is refused; the submitter of a version cannot be its only
approval; a rollback and a guard repair carry the principal who asked; the guard reverts an
admin's REST move; the application's DB credentials cannot UPDATE or DELETE an audit row; and no
password is found in any log, CLI output, the lifecycle DB or the MLflow store afterwards."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from kernel_lifecycle.cli.ui import free_port
from kernel_lifecycle.errors import KernelLifecycleError
from kernel_lifecycle.guard.aliases import GUARD_ACTOR
from kernel_lifecycle.settings import get_settings
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR
from tests.factories import make_bundle, make_report, make_tiny_base, register_with_report, write_tiny_skills
from tests.registry.team_server import REPO, team_server
from tests.servers import basic_auth_env, stop_group, wait_until_answers

KERNEL = "python-kernel"
USERS = ("admin", "kl-service", "alice", "bob", "carol")
PASSWORDS = {user: secrets.token_urlsafe(18) for user in USERS}
WRONG = secrets.token_urlsafe(18)  # alice's password, mistyped
COUNTED = ("kl_audit_events", "kl_approvals", "kl_policy_snapshots", "kl_jobs", "kl_aliases")


@dataclass
class Team:
    mlflow: str
    api: str
    db: str
    root: Path
    outputs: list[str] = field(default_factory=list)  # every CLI line the people saw


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, postgres_available: bool) -> Iterator[Team]:
    if not postgres_available:
        pytest.skip("team mode needs PostgreSQL")
    from mlflow.server.auth.client import AuthServiceClient

    from kernel_lifecycle.db.engine import dispose_engines, upgrade
    from tests.conftest import POSTGRES_URL, postgres_database

    root = tmp_path_factory.mktemp("identity")
    with team_server(root, POSTGRES_URL, basic_auth_env(root, PASSWORDS["admin"])) as mlflow_url, \
            postgres_database("kl_identity") as db, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["admin"])
        auth = AuthServiceClient(mlflow_url)
        for user in USERS[1:]:
            auth.create_user(user, PASSWORDS[user])
        upgrade(db)
        dispose_engines()
        skills = write_tiny_skills(root / "skills")  # the tiny skills of the job below, beside the demo's
        for name in ("python", "sql", "cobol"):
            (skills / name).symlink_to(DEMO_SKILLS_DIR / name)
        port = free_port()
        env = {
            **os.environ, "PYTHONPATH": str(REPO), "KL_HOME": str(root / "service-home"), "KL_DATABASE_URL": db,
            "KL_SKILLS_DIR": str(skills),
            "MLFLOW_TRACKING_URI": mlflow_url, "MLFLOW_TRACKING_USERNAME": "kl-service",
            "MLFLOW_TRACKING_PASSWORD": PASSWORDS["kl-service"], "KL_API_URL": "",
        }
        log = root / "service.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kernel_lifecycle.cli", "serve", "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_until_answers(proc, f"http://127.0.0.1:{port}/health", log, timeout=180)
            yield Team(mlflow=mlflow_url, api=f"http://127.0.0.1:{port}", db=db, root=root)
        finally:
            stop_group(proc)


def _person(mp: pytest.MonkeyPatch, team: Team, user: str, password: str | None = None) -> None:
    """A person at their terminal: the service's URL and their own MLflow user, no DB URL."""
    mp.setenv("KL_API_URL", team.api)
    mp.setenv("MLFLOW_TRACKING_URI", team.mlflow)
    mp.setenv("MLFLOW_TRACKING_USERNAME", user)
    mp.setenv("MLFLOW_TRACKING_PASSWORD", password or PASSWORDS[user])
    mp.delenv("KL_DATABASE_URL", raising=False)
    get_settings.cache_clear()


def _operator(mp: pytest.MonkeyPatch, team: Team) -> None:
    """Set-up steps that are not decisions (registering bundles, gating) run as the service account."""
    mp.delenv("KL_API_URL", raising=False)
    mp.setenv("MLFLOW_TRACKING_URI", team.mlflow)
    mp.setenv("MLFLOW_TRACKING_USERNAME", "kl-service")
    mp.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["kl-service"])
    mp.setenv("KL_DATABASE_URL", team.db)
    get_settings.cache_clear()


def _counts(db: str) -> dict[str, int]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}
    finally:
        engine.dispose()


def _audit(db: str, action: str) -> list[dict]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM kl_audit_events WHERE action = :a ORDER BY id"), {"a": action})
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def _champion(team: Team) -> str | None:
    from mlflow import MlflowClient

    return MlflowClient(team.mlflow).get_model_version_by_alias(KERNEL, "champion").version


def _admin_moves_champion(team: Team, version: str) -> None:
    """The UI's alias editor: a raw REST call by an MLflow admin, around every gate."""
    token = base64.b64encode(f"admin:{PASSWORDS['admin']}".encode()).decode()
    request = urllib.request.Request(
        f"{team.mlflow}/api/2.0/mlflow/registered-models/alias", method="POST",
        data=json.dumps({"name": KERNEL, "alias": "champion", "version": version}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_decisions_are_made_by_authenticated_principals(cli, kl_home, tmp_path: Path, team: Team) -> None:  # noqa: PLR0915
    mp = pytest.MonkeyPatch()

    def run(*args: str) -> tuple[int, str, str]:
        code, out, err = cli(*args)
        team.outputs.append(out + err)
        return code, out, err

    def refused(*args: str, says: str) -> None:
        """A refusal: exit 1, one line on stderr naming the problem, and no row written anywhere."""
        before = _counts(team.db)
        code, _, err = run(*args)
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
        assert says in err, err
        assert _counts(team.db) == before

    policy = tmp_path / "python-kernel.yaml"
    content = (REPO / "policies" / "python-kernel.yaml").read_text()
    content = content.replace("owners:\n  - platform-ml\n  - data-platform", "owners:\n  - alice")
    content = content.replace("approvers: [alice, bob]", "approvers: [alice, carol]")
    assert "  - alice" in content and "[alice, carol]" in content
    policy.write_text(content)
    base = make_tiny_base(tmp_path / "base")

    def new_version(parent: str | None, submitter: str | None = None) -> str:
        from kernel_lifecycle import aliases
        from kernel_lifecycle.db.engine import session_scope

        _operator(mp, team)
        bundle = make_bundle(tmp_path / f"v{parent}", kernel=KERNEL, parent=parent, base_dir=base)
        version = register_with_report(bundle, make_report())
        if submitter:  # the last step of the job `submitter` submitted: candidate -> the new version
            with session_scope() as session:
                aliases.move_alias(session, name=KERNEL, alias="candidate", version=version, actor=submitter,
                                   reason="upskill job", check_version=False)
        assert run("gate", KERNEL, version)[0] == 0
        return version

    try:
        # policies: only an owner applies one; bob is no owner, alice is
        _person(mp, team, "bob")
        refused("policies", "apply", str(policy), says="'bob' is not among the owners of python-kernel")
        _person(mp, team, "alice")
        code, out, err = run("policies", "apply", str(policy), "--json")
        assert code == 0 and json.loads(out)["changed"], err
        [applied] = _audit(team.db, "policy_apply")
        assert (applied["actor"], applied["principal"]) == ("alice", "alice")

        v1 = new_version(None)

        # approvals: bob is not an approver; typing another name is no way round it; nor is a guess
        _person(mp, team, "bob")
        refused("approve", KERNEL, v1, says="'bob' is not an approver of python-kernel")
        refused("approve", KERNEL, v1, "--actor", "alice", says="--actor alice is refused in team mode")
        refused("promote", KERNEL, v1, "--actor", "alice", says="--actor alice is refused in team mode")
        mp.setenv("KL_ACTOR", "alice")  # an exported name is no identity either
        get_settings.cache_clear()
        refused("approve", KERNEL, v1, says="KL_ACTOR=alice is refused in team mode")
        mp.delenv("KL_ACTOR")
        get_settings.cache_clear()
        _person(mp, team, "alice", WRONG)
        refused("approve", KERNEL, v1, says="MLflow did not accept the password of user 'alice'")
        _person(mp, team, "alice")
        code, out, err = run("approve", KERNEL, v1, "--json")
        assert code == 0 and json.loads(out)["approver"] == "alice", err
        code, out, err = run("promote", KERNEL, v1, "--reason", "first", "--json")
        assert code == 0 and json.loads(out)["champion"] == v1, err
        assert _champion(team) == v1

        # two-person rule: alice submitted v2's job, so her approval alone does not promote it
        v2 = new_version(v1, submitter="alice")
        _person(mp, team, "alice")
        assert run("approve", KERNEL, v2)[0] == 0
        code, _, err = run("promote", KERNEL, v2)
        assert code == 1 and err.count("\n") == 1 and "only approval is from alice, who submitted the job" in err, err
        assert _champion(team) == v1
        assert [(r["outcome"], r["principal"]) for r in _audit(team.db, "promote")] == [("ok", "alice"), ("refused", "alice")]
        _person(mp, team, "carol")
        assert run("approve", KERNEL, v2)[0] == 0
        _person(mp, team, "alice")
        code, _, err = run("promote", KERNEL, v2, "--reason", "carol approved too")
        assert code == 0, err
        assert _champion(team) == v2

        # rollback: an approver's decision too
        _person(mp, team, "bob")
        refused("kernels", "rollback", KERNEL, "--to", v1, "--reason", "bad", says="'bob' is not among the approvers")
        _person(mp, team, "carol")
        code, out, err = run("kernels", "rollback", KERNEL, "--to", v1, "--reason", "v2 regressed", "--json")
        assert code == 0 and json.loads(out)["actor"] == "carol", err
        assert _champion(team) == v1

        # jobs: bob may not submit one for a kernel whose policy does not name him
        _person(mp, team, "bob")
        refused("jobs", "upskill", KERNEL, "--steps", "1", says="'bob' is not among the owners or approvers")

        # a job submitted through the service trains and registers as its submitter (real steps, tiny base)
        from mlflow import MlflowClient

        from kernel_lifecycle.service.client import call

        _person(mp, team, "alice")
        overrides = {
            "base": str(make_tiny_base(tmp_path / "teacher", hidden=16, layers=1)), "skills": ["py"], "steps": 1,
            "batch_size": 2, "eval_every": 1, "eval_problems": 1, "rank": 2,
            "harness": {"max_new_tokens": 4, "split": "test"}, "report_skills": ["py"],
        }
        kv = call(team.api, "job_submit", {"kind": "adapt", "kernel": "tiny-adapted", "overrides": overrides})
        assert kv["version"] == "1" and kv["tags"]["kernel.job_kind"] == "adapt"
        assert MlflowClient(team.mlflow).get_run(kv["run_id"]).data.tags["kernel.actor"] == "alice"
        made = [r for r in _audit(team.db, "alias_set") if r["kernel"] == "tiny-adapted"]
        assert [(r["alias"], r["actor"], r["principal"]) for r in made] == [("candidate", "alice", "alice")]

        # requests the CLI would not send: each one line, nothing written
        before = _counts(team.db)
        for action, body, says in (("approve", {"kernel": KERNEL}, "the request needs 'version'"),
                                   ("merge", {}, "no action 'merge'")):
            with pytest.raises(KernelLifecycleError, match=says) as refusal:
                call(team.api, action, body)
            assert "\n" not in str(refusal.value)
        anonymous = urllib.request.Request(f"{team.api}/v1/approve", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as no_credentials:
            urllib.request.urlopen(anonymous, timeout=30)
        assert no_credentials.value.code == 401
        assert "no HTTP basic credentials" in json.loads(no_credentials.value.read())["error"]
        assert _counts(team.db) == before

        # the guard still reverts an MLflow admin's REST move; the repair records who asked for it
        _person(mp, team, "bob")
        _admin_moves_champion(team, v2)
        assert _champion(team) == v2
        code, out, err = run("guard", "check", "--repair", "--json")
        assert code == 0 and json.loads(out)["repaired"], (out, err)
        assert _champion(team) == v1
        [revert] = _audit(team.db, "alias_reverted")
        assert (revert["principal"], revert["details"]["requested_by"]) == ("bob", "bob")

        # `kernels audit` through the service: every decision carries its authenticated principal
        code, out, err = run("kernels", "audit", KERNEL, "--json")
        assert code == 0, err
        decided = {(r["action"], r["outcome"], r["actor"], r["principal"]) for r in json.loads(out)}
        assert {("approve", "ok", "alice", "alice"), ("approve", "ok", "carol", "carol"), ("promote", "ok", "alice", "alice"),
                ("rollback", "ok", "carol", "carol"), ("alias_reverted", "ok", GUARD_ACTOR, "bob")} <= decided
        assert run("kernels", "audit", KERNEL)[0] == 0  # the table has a principal column too

        # the application's own DB credentials cannot rewrite the trail
        before = _counts(team.db)
        engine = create_engine(team.db)
        try:
            for statement in ("UPDATE kl_audit_events SET actor = 'mallory'", "DELETE FROM kl_audit_events",
                              "UPDATE kl_approvals SET approver = 'mallory'", "DELETE FROM kl_approvals",
                              "TRUNCATE kl_audit_events"):
                with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                    conn.execute(text(statement))
        finally:
            engine.dispose()
        assert _counts(team.db) == before
        assert not [r for r in _audit(team.db, "approve") if r["actor"] == "mallory"]
    finally:
        mp.undo()
        get_settings.cache_clear()
    _no_password_anywhere(team)


def _no_password_anywhere(team: Team) -> None:
    """After the run: no test password in a log, a CLI output, the lifecycle DB, or the MLflow
    store (runs' params and tags, versions' tags and descriptions, the artifacts)."""
    from mlflow import MlflowClient

    texts = {"CLI output": "\n".join(team.outputs)}
    for log in team.root.glob("*.log"):
        texts[log.name] = log.read_text(errors="replace")
    engine = create_engine(team.db)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'kl_%'")).scalars().all()
            texts["lifecycle DB"] = "\n".join(str(list(conn.execute(text(f"SELECT * FROM {t}")))) for t in tables)
    finally:
        engine.dispose()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS["admin"])
        client = MlflowClient(team.mlflow)
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments)
        versions = client.search_model_versions(f"name = '{KERNEL}'")
        texts["MLflow runs"] = "\n".join(f"{r.data.params} {r.data.tags}" for r in runs)
        texts["MLflow versions"] = "\n".join(f"{v.tags} {v.description}" for v in versions)
    artifacts = [p for p in (team.root / "artifacts").rglob("*") if p.is_file()]
    texts["MLflow artifacts"] = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in artifacts)
    # the places searched are the real ones: each holds what the run put there
    assert "approve by alice" in texts["service.log"] and "POST /v1/approve" in texts["service.log"]
    assert "kernel.actor" in texts["MLflow runs"] and artifacts and "alias_reverted" in texts["lifecycle DB"]
    for password in [*PASSWORDS.values(), WRONG]:
        leaks = [where for where, body in texts.items() if password in body]
        assert not leaks, f"a test password is in: {leaks}"
