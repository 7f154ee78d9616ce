"""The registry through the real CLI: register, lineage, aliases, rollback, audit, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kernel_lifecycle import aliases
from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.registry import client as registry
from tests.factories import make_bundle, make_tiny_base


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("assets")
    base = make_tiny_base(root / "base")
    return {
        "v1": make_bundle(root / "v1", parent=None, job_id="job-a", base_dir=base),
        "v2": make_bundle(root / "v2", parent="1", job_id="job-b", base_dir=base),
        "v3": make_bundle(root / "v3", parent="2", job_id="job-c", base_dir=base, n_adapters=2),
    }


def _mlflow_versions(name: str) -> int:
    try:
        return len(registry.list_versions(name))
    except Exception:  # noqa: BLE001 - unknown kernel
        return 0


def test_three_versions_lineage_and_rollback(cli, migrated_db: str, assets: dict[str, Path]) -> None:
    for key in ("v1", "v2", "v3"):
        code, out, err = cli("kernels", "register", assets[key], "--json")
        assert code == 0, err
        assert json.loads(out)["version"] == key[1:]

    code, out, _ = cli("kernels", "lineage", "demo-kernel@3")
    assert code == 0
    assert "v3 -> v2 -> v1" in out
    # the table for people: every version's job, policy and adapter stack, whole (folded, not cut)
    rows = " ".join(out.split())
    assert all(job in rows for job in ("job-c", "job-b", "job-a")) and rows.count("abababab") == 3
    from kernel_lifecycle.cli import output

    wide = output.console.width
    output.console.width = 200
    try:
        code, out, _ = cli("kernels", "lineage", "demo-kernel@3")
    finally:
        output.console.width = wide
    assert "upskill python > upskill python" in out
    code, out, _ = cli("kernels", "lineage", "demo-kernel@3", "--json")
    chain = json.loads(out)
    assert [v["tags"]["kernel.job_id"] for v in chain] == ["job-c", "job-b", "job-a"]
    assert all(v["tags"]["kernel.policy_sha256"] == "ab" * 32 for v in chain)
    assert chain[0]["tags"]["kernel.adapters"].count(":upskill:python:") == 2

    with session_scope() as session:
        for version in ("1", "3"):
            aliases.move_alias(
                session, name="demo-kernel", alias="champion", version=version, actor="ci", reason="promote"
            )
    code, out, err = cli(
        "kernels", "rollback", "demo-kernel", "--to", "2", "--reason", "v3 broke cobol retirement",
        "--actor", "alice", "--json",
    )
    assert code == 0, err
    assert json.loads(out) == {"kernel": "demo-kernel", "alias": "champion", "from": "3", "to": "2", "actor": "alice"}
    assert registry.resolve("demo-kernel@champion").version == "2"
    with session_scope() as session:
        events = repo.list_audit(session, kernel="demo-kernel")
    rollback = events[0]
    assert (rollback.action, rollback.actor, rollback.from_version, rollback.to_version, rollback.reason) == (
        "rollback", "alice", "3", "2", "v3 broke cobol retirement"
    )
    assert [e.action for e in events] == ["rollback", "alias_set", "alias_set"]

    code, out, _ = cli("kernels", "audit", "demo-kernel", "--json")
    assert json.loads(out)[0]["reason"] == "v3 broke cobol retirement"
    code, out, _ = cli("kernels", "list", "--json")
    assert json.loads(out)[0]["aliases"] == {"champion": "2"}

    # forward is not a rollback
    code, _, err = cli("kernels", "rollback", "demo-kernel", "--to", "3", "--reason", "x")
    assert code == 1 and "earlier version" in err


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no-such-kernel@1", "unknown kernel 'no-such-kernel'"),
        ("demo-kernel@9", "has no version 9"),
        ("demo-kernel@staging", "no version with alias 'staging'"),
    ],
)
def test_unknown_kernel_or_version(cli, migrated_db: str, assets: dict[str, Path], ref: str, message: str) -> None:
    assert cli("kernels", "register", assets["v1"])[0] == 0
    code, out, err = cli("kernels", "show", ref)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1


def _tamper(bundle: Path, tmp_path: Path, how: str) -> Path:
    copy = tmp_path / how
    shutil.copytree(bundle, copy)
    if how == "tampered":
        weights = copy / "adapters" / "adapter0" / "adapter_model.safetensors"
        data = bytearray(weights.read_bytes())
        data[100] ^= 0x01
        weights.write_bytes(bytes(data))
    elif how == "pickle":
        (copy / "adapters" / "adapter0" / "adapter_model.safetensors").unlink()
        (copy / "adapters" / "adapter0" / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    elif how == "missing-field":
        manifest = json.loads((copy / "manifest.json").read_text())
        del manifest["kernel"]
        (copy / "manifest.json").write_text(json.dumps(manifest))
    elif how == "unknown-parent":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["parent_version"] = "7"
        (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    "how, message",
    [
        ("tampered", "does not match the manifest"),
        ("pickle", "pickle-based weights are refused"),
        ("missing-field", "missing field at 'kernel'"),
        ("unknown-parent", "unknown kernel 'demo-kernel'"),
    ],
)
def test_bad_bundles_write_nothing(cli, migrated_db, assets, tmp_path: Path, how: str, message: str) -> None:
    bad = _tamper(assets["v1"], tmp_path, how)
    code, out, err = cli("kernels", "register", bad)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1
    assert _mlflow_versions("demo-kernel") == 0
    assert registry.client().search_runs([registry.experiment_id()]) == []
    with session_scope() as session:
        assert repo.list_audit(session) == []


def test_unreachable_database_writes_nothing_to_mlflow(cli, kl_home, assets, monkeypatch) -> None:
    from kernel_lifecycle.settings import get_settings

    monkeypatch.setenv("KL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    code, _, err = cli("kernels", "register", assets["v1"])
    assert code == 1 and "cannot reach the lifecycle database" in err
    assert _mlflow_versions("demo-kernel") == 0


def test_fetch_bundle_round_trip(migrated_db: str, assets: dict[str, Path]) -> None:
    kv = registry.register_version(assets["v2"].parent.parent / "v1" / "bundle")
    local = registry.fetch_bundle(kv)
    assert (local / "manifest.json").read_text() == (assets["v1"] / "manifest.json").read_text()


def test_a_corrupted_cached_bundle_is_fetched_again(migrated_db: str, assets: dict[str, Path]) -> None:
    """A cached download that fails verification heals by itself; only a bad store copy refuses."""
    from kernel_lifecycle.errors import BundleError
    from kernel_lifecycle.registry.tracking import client as mlflow_client

    kv = registry.register_version(assets["v1"])
    local = registry.fetch_bundle(kv)
    weights = local / "adapters" / "adapter0" / "adapter_model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-7] + b"garbage")  # e.g. a download cut while the store was bad
    assert registry.fetch_bundle(kv) == local and weights.read_bytes() == good

    # the store's own copy is damaged too: refused, naming the file and what to do
    artifact_root = Path(mlflow_client().get_run(kv.run_id).info.artifact_uri.removeprefix("file://"))
    (artifact_root / "bundle" / "adapters" / "adapter0" / "adapter_model.safetensors").write_bytes(b"not the weights")
    weights.write_bytes(b"also not the weights")
    with pytest.raises(BundleError, match=r"fails verification after a fresh download: .*adapter_model.safetensors.*roll back"):
        registry.fetch_bundle(kv)
