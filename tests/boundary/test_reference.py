"""Choosing the model a retired skill's relearning is compared with, from the lineage's tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.reference import choose_reference, find_retrain, record_retrain, taught_by
from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.registry.client import KernelVersion
from kernel_lifecycle.settings import get_settings


def kv(version: str, kind: str, data: list[str], *, parent: str | None = None, retired: str = "") -> KernelVersion:
    tags = {"kernel.job_kind": kind, "kernel.data": json.dumps({d: "0" * 64 for d in data}), "kernel.base_sha256": "b" * 64}
    if parent:
        tags["kernel.parent_version"] = parent
    if retired:
        tags["kernel.skills.retired"] = retired
    return KernelVersion(name="k", version=version, run_id=None, source="", tags=tags)


# the demo's shape: v1 distilled on python + cobol from the demo base, v2 upskilled sql, v3 retired cobol
V1 = kv("1", "distill", ["python/train", "cobol/train", "base:demo", "teacher"])
V2 = kv("2", "upskill", ["python/train", "sql/train"], parent="1")
V3 = kv("3", "downskill", ["cobol/train", "python/train", "sql/train"], parent="2", retired="cobol")
ALL = {"python", "cobol", "sql"}


def no_retrain(origin: str, skill: str):  # noqa: ANN201
    return None


def test_what_a_version_taught_is_its_train_data_less_what_it_retires() -> None:
    assert taught_by(V1) == {"python", "cobol"}
    assert taught_by(V2) == {"python", "sql"}
    assert taught_by(V3) == {"python", "sql"}  # a downskill reads the forget set to unlearn it


def test_an_ancestor_that_taught_the_skill_is_skipped_for_the_nearest_that_did_not() -> None:
    # retiring sql from a child of v2: v2 taught sql (skipped), v1 never did (chosen)
    ref = choose_reference([V2, V1], "sql", origin_taught=lambda spec: {"python", "cobol"}, retrain=no_retrain)
    assert (ref.kind, ref.version, ref.name) == ("version", "1", "k v1")
    assert "nearest ancestor" in ref.why
    # the origin knew sql: every version inherits it, so no version fits and there is no retrain
    ref = choose_reference([V2, V1], "sql", origin_taught=lambda spec: ALL, retrain=no_retrain)
    assert ref.kind == "none" and "half-start rule (weaker)" in ref.why and "pretrained on cobol, python, sql" in ref.why


def test_the_demo_lineage_needs_a_retrain_and_finds_the_recorded_one(kl_home: Path) -> None:
    origin = "d" * 64
    chain = [V3, V2, V1]
    ref = choose_reference(chain, "cobol", origin_taught=lambda spec: ALL, retrain=lambda o, s: (Path("/r"), "e" * 64) if (o, s) == (origin, "cobol") else None)
    assert ref.kind == "none"  # "demo" resolves to the shipped base's sha256, not to the made-up origin
    ref = choose_reference(chain, "cobol", origin_taught=lambda spec: {"python", "sql"}, retrain=no_retrain)
    assert (ref.kind, ref.spec) == ("base", "demo") and "never pretrained on cobol" in ref.why
    # the index a build records is what find_retrain returns, verified
    folder = kl_home / "ref"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    from kernel_lifecycle.models.bases import base_sha256

    sha = base_sha256(folder)
    record_retrain(origin_sha256=origin, skill="cobol", path=folder, sha256=sha, seconds=1.0)
    assert find_retrain(origin, "cobol") == (folder, sha)
    assert find_retrain(origin, "sql") is None
    (folder / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(ConfigurationError, match="modified after it was built"):
        find_retrain(origin, "cobol")
    assert get_settings().cache_dir in (get_settings().cache_dir / "reference").parents


def test_the_policy_may_name_a_reference_but_never_one_that_knew_the_skill() -> None:
    knew = dict(origin_taught=lambda spec: ALL, retrain=no_retrain)
    with pytest.raises(ConfigurationError, match="no reference; use `reference: retrain`"):
        choose_reference([V2, V1], "cobol", choice="base", **knew)
    with pytest.raises(ConfigurationError, match="build-base --without cobol"):
        choose_reference([V2, V1], "cobol", choice="retrain", **knew)
    with pytest.raises(ConfigurationError, match="its lineage taught cobol"):
        choose_reference([V2, V1], "cobol", choice="1", **knew)
    with pytest.raises(ConfigurationError, match="nor a version of this lineage"):
        choose_reference([V2, V1], "cobol", choice="7", **knew)
    assert choose_reference([V2, V1], "sql", choice="1", origin_taught=lambda spec: {"python", "cobol"}, retrain=no_retrain).version == "1"
    none = choose_reference([V2, V1], "cobol", choice="none", **knew)
    assert none.kind == "none" and "weaker" in none.why
