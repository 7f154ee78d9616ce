"""Fault (5): no space left while writing a bundle into the artifact store, or a base into the
base cache, on a real full filesystem (a small tmpfs, filled at a chosen point; mounting needs
root: the tests skip with that reason elsewhere). One clear line; no partial entry in the store
or the cache; once space returns, the next run works."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import dispose_engines, session_scope
from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.models.bases import base_sha256, resolve_base
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.registry.bases import publish_base
from kernel_lifecycle.registry.tracking import client as mlflow_client
from kernel_lifecycle.settings import get_settings
from tests.factories import make_tiny_base
from tests.faults.pausing import fault_at
from tests.jobs.test_crash_safety import _cli, tiny_kernel  # noqa: F401 - a fixture (asked for by name)


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a full filesystem needs a tmpfs mount (root): {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[callable]:
    """``mount(path, size)``: a tmpfs there; all unmounted at the end."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        _mount_tmpfs(path, size)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``path`` to the last byte, then give ``leave`` bytes back."""
    filler = path / ".filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_full_artifact_store_during_a_bundle_upload(db_url, kl_home, small_fs, request, tmp_path) -> None:  # noqa: ANN001
    store = small_fs(kl_home / "mlartifacts", "32m")  # the embedded store's artifact root
    env = request.getfixturevalue("tiny_kernel")
    assert [kv.version for kv in registry.list_versions("tiny")] == ["1"]

    where = tmp_path / "pause"
    where.mkdir()
    proc = _cli(["jobs", "downskill", "tiny", "--actor", "alice", "--steps", "2", "--eval-every", "2"],
                {**env, registry.FAULT_PAUSE: "registration.upload", registry.FAULT_DIR: str(where)})
    # at the pause the store fills: some of the bundle's files fit, the rest do not
    line, _ = fault_at(proc, where, "registration.upload", lambda: fill(store, leave=16384))
    assert "No space left on device" in line and "no version was created" in line, line

    dispose_engines()
    with session_scope() as session:
        job = [j for j in repo.list_jobs(session, kernel="tiny") if j.kind == "downskill"][0]
        assert job.state == "failed" and "No space left on device" in job.error
    assert [kv.version for kv in registry.list_versions("tiny")] == ["1"]
    run = mlflow_client().get_run(job.mlflow_run_id)
    assert run.info.status == "FAILED"
    assert [a.path for a in mlflow_client().list_artifacts(run.info.run_id) if a.path == registry.BUNDLE_ARTIFACT] == []  # no partial bundle

    (store / ".filler").unlink()  # space returns: the next run registers, once
    proc = _cli(["jobs", "downskill", "tiny", "--actor", "alice", "--steps", "2", "--eval-every", "2", "--json"], env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert [kv.version for kv in registry.list_versions("tiny")] == ["1", json.loads(out)["version"]]


def test_a_full_base_cache(migrated_db, kl_home, small_fs, tmp_path) -> None:  # noqa: ANN001
    base = make_tiny_base(tmp_path / "base")
    uri = publish_base(base, sha256=base_sha256(base), spec=str(base))
    cache = small_fs(get_settings().cache_dir / "bases", "16m")
    filler = fill(cache, leave=16384)
    with pytest.raises(BundleError) as refused:
        resolve_base(uri)
    message = str(refused.value)
    assert "\n" not in message and f"cannot fetch base model {uri}: no space left on device in the base cache" in message
    assert sorted(p.name for p in cache.iterdir()) == [".filler"]  # no entry, no staging folder left

    filler.unlink()
    resolved = resolve_base(uri)
    assert resolved.fresh and resolved.sha256 == base_sha256(base)
    assert resolve_base(uri).path == resolved.path and not resolve_base(uri).fresh  # a whole entry, reused
