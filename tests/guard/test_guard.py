"""The guard on the embedded stores: drift found, reverted and audited; signatures verified with
MLflow's own signing code; the lifecycle's own moves never reverted, even racing the guard."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from kernel_lifecycle import aliases
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.tracking import client
from tests.factories import make_bundle, make_tiny_base


@pytest.fixture
def three_versions(migrated_db: str, tmp_path: Path) -> str:
    """demo-kernel v1..v3 in the embedded MLflow store, champion v3 through the lifecycle."""
    base = make_tiny_base(tmp_path / "base")
    for version, parent in (("1", None), ("2", "1"), ("3", "2")):
        registry.register_version(make_bundle(tmp_path / f"v{version}", parent=parent, base_dir=base))
    with session_scope() as session:
        aliases.move_alias(session, name="demo-kernel", alias="champion", version="3", actor="ops", reason="release")
    return "demo-kernel"


def _mlflow_aliases(kernel: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client().get_registered_model(kernel).aliases.items()}


def _reverted(kernel: str) -> list:
    with session_scope() as session:
        return repo.list_audit(session, kernel=kernel, actions=("alias_reverted",))


def test_check_lists_drift_and_repair_reverts_it_audited(cli, three_versions: str, monkeypatch) -> None:
    code, out, err = cli("guard", "check", "--json")
    assert code == 0, err
    assert json.loads(out) == {"consistent": True, "drift": [], "repaired": [], "remaining": []}

    # what the UI's alias editor does: a raw alias move, plus an alias the lifecycle never set
    client().set_registered_model_alias(three_versions, "champion", "1")
    client().set_registered_model_alias(three_versions, "candidate", "2")
    code, out, _ = cli("guard", "check", "--json")
    assert code == 1
    found = json.loads(out)
    assert sorted((d["alias"], d["mlflow_version"], d["audited_version"]) for d in found["drift"]) == [
        ("candidate", "2", None),
        ("champion", "1", "3"),
    ]
    assert not _reverted(three_versions)  # a check without --repair changes nothing
    code, out, _ = cli("guard", "check")
    assert code == 1 and "champion" in out and "drift" in out

    code, out, err = cli("guard", "check", "--repair", "--json")
    assert code == 0, err
    assert len(json.loads(out)["repaired"]) == 2
    assert _mlflow_aliases(three_versions) == {"champion": "3"}
    rows = {row.alias: row for row in _reverted(three_versions)}
    assert (rows["champion"].from_version, rows["champion"].to_version) == ("1", "3")
    assert (rows["candidate"].from_version, rows["candidate"].to_version) == ("2", None)
    assert rows["champion"].details["drift"] == {
        "kernel": three_versions, "alias": "champion", "mlflow_version": "1", "audited_version": "3"
    }
    assert rows["champion"].actor == "kernel-lifecycle-guard"

    code, out, _ = cli("kernels", "audit", three_versions, "--reverted", "--json")
    assert code == 0
    assert [(r["action"], r["alias"], r["from"], r["to"]) for r in json.loads(out)] == [
        ("alias_reverted", "candidate", "2", None),
        ("alias_reverted", "champion", "1", "3"),
    ]
    from kernel_lifecycle.cli.output import console

    monkeypatch.setattr(console, "width", 400)  # rich folds cells to the terminal; a log is wide
    code, out, _ = cli("kernels", "audit", three_versions)
    assert "alias_reverted (outside move to v1, seen by check)" in out and "alias_set" in out
    code, out, _ = cli("guard", "check", "--json")
    assert code == 0 and json.loads(out)["consistent"]


def test_unmanaged_kernels_are_not_touched(cli, migrated_db: str, tmp_path: Path) -> None:
    registry.register_version(make_bundle(tmp_path / "v1", kernel="someone-elses"))
    client().set_registered_model_alias("someone-elses", "champion", "1")
    code, out, _ = cli("guard", "check", "--repair", "--json")
    assert code == 0 and json.loads(out)["drift"] == []
    assert _mlflow_aliases("someone-elses") == {"champion": "1"}


def test_signature_verification_accepts_mlflow_signed_deliveries_only(monkeypatch) -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    from kernel_lifecycle.guard.webhook import SignatureError, verify

    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": {"name": "k", "alias": "champion", "version": "1"}})
    stamp = str(int(time.time()))
    headers = {
        "X-MLflow-Delivery-Id": "d-1",
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature("s3cret", "d-1", stamp, body),
    }
    verify("s3cret", headers, body.encode())
    with pytest.raises(SignatureError, match="does not match"):
        verify("other", headers, body.encode())
    with pytest.raises(SignatureError, match="does not match"):
        verify("s3cret", headers, body.replace('"1"', '"2"').encode())
    with pytest.raises(SignatureError, match="replay"):
        verify("s3cret", headers, body.encode(), now=int(stamp) + 3600)
    with pytest.raises(SignatureError, match="missing"):
        verify("s3cret", {k: v for k, v in headers.items() if "Signature" not in k}, body.encode())


def test_serve_and_install_refuse_without_a_secret(cli, migrated_db: str) -> None:
    for args in (("install", "--url", "https://guard.example.com/"), ("serve", "--port", "0")):
        code, _, err = cli("guard", *args)
        assert code == 1 and "KL_GUARD_SECRET" in err, err


def test_racing_promotions_never_trip_the_guard(three_versions: str) -> None:
    """Promotions (compare-and-set, audit row, then MLflow) race a guard repairing in a loop."""
    from tests.guard.racing import race_promotions

    race = race_promotions(three_versions, rounds=8)
    assert race.won >= 8 and race.guard_rounds >= 1
    assert race.guard_repaired == [] and race.guard_remaining == []
    assert _reverted(three_versions) == []  # not one of the lifecycle's own moves was reverted
    with session_scope() as session:
        audited = repo.get_alias(session, kernel=three_versions, alias="champion")
    assert _mlflow_aliases(three_versions)["champion"] == audited


def test_the_scheduler_reverts_drift_on_its_interval(three_versions: str, monkeypatch) -> None:
    """Webhooks can be lost: `scheduler run` checks every KL_GUARD_INTERVAL seconds."""
    from kernel_lifecycle.scheduler.service import run_service
    from kernel_lifecycle.settings import get_settings
    from tests.scheduler.handlers import db_job

    monkeypatch.setenv("KL_GUARD_INTERVAL", "0.5")
    get_settings.cache_clear()
    stop = threading.Event()
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("summary", run_service(handler=db_job, poll=0.2, stop_event=stop, install_signals=False))
    )
    thread.start()
    try:
        client().set_registered_model_alias(three_versions, "champion", "2")  # while the scheduler runs
        deadline = time.monotonic() + 60
        while not _reverted(three_versions) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    [row] = _reverted(three_versions)
    assert (row.from_version, row.to_version, row.details["source"]) == ("2", "3", "scheduler")
    assert _mlflow_aliases(three_versions) == {"champion": "3"}
    assert result["summary"].guard_reverted == [
        {"kernel": three_versions, "alias": "champion", "mlflow_version": "2", "audited_version": "3"}
    ]


def test_lineage_and_gate_tags_changed_by_hand_are_restored(three_versions: str) -> None:
    """A verified tag event: lineage back from the manifest, a gate tag with no gate decision removed."""
    from kernel_lifecycle.guard.webhook import handle_event

    client().set_model_version_tag(three_versions, "3", "kernel.parent_version", "1")  # rewriting lineage
    client().set_model_version_tag(three_versions, "3", "gate.status", "passed")  # a gate never run
    client().set_model_version_tag(three_versions, "3", "owner.note", "mine")  # a person's own tag
    for key, value in (("kernel.parent_version", "1"), ("gate.status", "passed"), ("owner.note", "mine")):
        result = handle_event(
            {"entity": "model_version_tag", "action": "set", "data": {"name": three_versions, "version": "3", "key": key, "value": value}}
        )
        assert result["event"] == "model_version_tag.set"
    tags = registry.get_version(three_versions, "3").tags
    assert tags["kernel.parent_version"] == "2" and "gate.status" not in tags and tags["owner.note"] == "mine"
    with session_scope() as session:
        rows = repo.list_audit(session, kernel=three_versions, actions=("tag_reverted",))
    assert sorted((r.details["drift"]["tag"], r.details["drift"]["mlflow_value"], r.details["drift"]["expected_value"]) for r in rows) == [
        ("gate.status", "passed", None),
        ("kernel.parent_version", "1", "2"),
    ]
