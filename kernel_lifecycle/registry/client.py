"""Kernel versions in the MLflow model registry: register, resolve, list, lineage, aliases.

A kernel is an MLflow registered model; a kernel version is a model version whose source is
the ``bundle/`` artifact folder of the run that produced it. Lineage lives in version tags
(``kernel.parent_version``, ``kernel.job_id``, ...) so an auditor can follow it in the UI.

This module talks to MLflow only. Where an alias must point is the lifecycle DB's business
(``kernel_lifecycle.aliases``: compare-and-set, audit row, then the MLflow mirror).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.errors import JobError, KernelLifecycleError, NotFoundError
from kernel_lifecycle.registry.bundle import BundleError, Manifest, verify_bundle
from kernel_lifecycle.registry.pyfunc import add_pyfunc_flavor
from kernel_lifecycle.registry.tracking import client, experiment_id
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.exceptions import MlflowException

BUNDLE_ARTIFACT = "bundle"


@dataclass(frozen=True)
class KernelVersion:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    created_at: datetime | None = None

    @property
    def parent_version(self) -> str | None:
        return self.tags.get("kernel.parent_version") or None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "aliases": list(self.aliases),
            "tags": dict(sorted(self.tags.items())),
            "description": self.description,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def _mlflow_errors() -> type[MlflowException]:
    from mlflow.exceptions import MlflowException  # heavy: loaded once a store is used

    return MlflowException


def _to_kv(mv: ModelVersion, aliases: tuple[str, ...] | None = None) -> KernelVersion:
    """``aliases``: for versions from a search, which returns none (mlflow/mlflow#9783)."""
    return KernelVersion(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", []) or ()) if aliases is None else aliases,
        description=mv.description or "",
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc)
        if mv.creation_timestamp
        else None,
    )


def lineage_tags(manifest: Manifest) -> dict[str, str]:
    adapters = [f"{a.name}:{a.role}:{a.skill}:{a.sha256[:12]}" for a in manifest.adapters]
    tags = {
        "kernel.parent_version": manifest.parent_version or "",
        "kernel.job_id": manifest.job_id or "",
        "kernel.policy_sha256": manifest.policy_sha256 or "",
        "kernel.skills.retained": ",".join(manifest.retained_skills),
        "kernel.skills.retired": ",".join(manifest.retired_skills),
        "kernel.adapters": " > ".join(adapters) or "(none)",
        "kernel.base_uri": manifest.base.uri,
        "kernel.base_sha256": manifest.base.sha256,
        "kernel.data": json.dumps(manifest.data_digests, sort_keys=True),
    }
    return {k: v for k, v in tags.items() if v != ""}


# ---- reading ----------------------------------------------------------------------------------


def kernel_exists(name: str) -> bool:
    try:
        client().get_registered_model(name)
        return True
    except _mlflow_errors():
        return False


def list_kernels() -> list[dict]:
    out = []
    for rm in client().search_registered_models(max_results=1000):
        out.append(
            {
                "name": rm.name,
                "latest_version": max((int(v.version) for v in rm.latest_versions or []), default=None),
                "aliases": {a: str(v) for a, v in sorted((rm.aliases or {}).items())},
                "description": rm.description or "",
            }
        )
    return sorted(out, key=lambda r: r["name"])


def list_versions(name: str) -> list[KernelVersion]:
    """Every version with its aliases, taken from the registered model (a version search has none)."""
    try:
        targets = alias_targets(name)
    except _mlflow_errors():
        raise NotFoundError(f"unknown kernel {name!r}; `kernel-lifecycle kernels list` shows them") from None
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(targets.items()):
        by_version.setdefault(version, []).append(alias)
    versions = client().search_model_versions(f"name='{name}'", max_results=10000)
    return sorted(
        (_to_kv(v, tuple(by_version.get(str(v.version), ()))) for v in versions), key=lambda kv: int(kv.version)
    )


def get_version(name: str, version: str) -> KernelVersion:
    if not str(version).isdigit():
        raise NotFoundError(f"version {version!r} of {name!r} is not a number; use NAME@3 or NAME@champion")
    try:
        return _to_kv(client().get_model_version(name, str(version)))
    except _mlflow_errors():
        if not kernel_exists(name):
            raise NotFoundError(
                f"unknown kernel {name!r}; `kernel-lifecycle kernels list` shows them"
            ) from None
        raise NotFoundError(f"kernel {name!r} has no version {version}") from None


def get_alias_version(name: str, alias: str) -> KernelVersion | None:
    try:
        return _to_kv(client().get_model_version_by_alias(name, alias))
    except _mlflow_errors():
        if not kernel_exists(name):
            raise NotFoundError(
                f"unknown kernel {name!r}; `kernel-lifecycle kernels list` shows them"
            ) from None
        return None


def resolve(ref: str) -> KernelVersion:
    """``NAME`` (its champion), ``NAME@VERSION`` or ``NAME@alias``."""
    name, _, selector = ref.partition("@")
    selector = selector or "champion"
    if not name:
        raise NotFoundError(f"{ref!r} names no kernel; use NAME, NAME@VERSION or NAME@alias")
    if selector.isdigit():
        return get_version(name, selector)
    found = get_alias_version(name, selector)
    if found is None:
        raise NotFoundError(f"kernel {name!r} has no version with alias {selector!r}")
    return found


def lineage(name: str, version: str | KernelVersion) -> list[KernelVersion]:
    """The version, its parent, its parent's parent, ... down to the root (a fetched
    ``KernelVersion`` is used as it is)."""
    chain = [version if isinstance(version, KernelVersion) else get_version(name, version)]
    seen = {chain[0].version}
    while chain[-1].parent_version:
        parent = chain[-1].parent_version
        if parent in seen:
            raise KernelLifecycleError(f"lineage of {name}@{version} loops at version {parent}")
        seen.add(parent)
        chain.append(get_version(name, parent))
    return chain


def fetch_bundle(kv: KernelVersion) -> Path:
    """Download (once) and verify the bundle of a version; returns its local directory.

    The cache heals itself: a cached copy that fails verification (a download corrupted while
    the artifact store was bad, a file changed on disk) is dropped and fetched again once; only
    when the store's own copy fails too is the bundle refused, naming the file.
    """
    # keyed by the run too: a store that was reset (or another store sharing KL_HOME) reuses
    # version numbers, and a cached bundle of another store's v1 would point at a base it lacks
    target = get_settings().cache_dir / "bundles" / kv.name / f"{kv.version}-{kv.run_id or 'no-run'}"
    for attempt in (1, 2):
        if not (target / "manifest.json").exists():
            _download(kv, target)
        try:
            verify_bundle(target)
            return target
        except BundleError as exc:
            shutil.rmtree(target, ignore_errors=True)
            if attempt == 2:
                raise BundleError(
                    f"{kv.ref}: the artifact store's copy of the bundle ({kv.source}) fails verification "
                    f"after a fresh download: {exc}. Restore the run's bundle artifacts, or roll back to "
                    "another version"
                ) from None
    raise AssertionError("unreachable")


def _download(kv: KernelVersion, target: Path) -> None:
    import mlflow.artifacts

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{kv.version}-"))
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=kv.source, dst_path=str(staging), tracking_uri=get_settings().tracking_uri
        )
        if not target.exists():
            Path(local).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---- writing ----------------------------------------------------------------------------------


def register_version(
    bundle_dir: Path,
    *,
    run_id: str | None = None,
    description: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> KernelVersion:
    """Verify a bundle, check its parent exists, and create the model version (``kernels
    register`` and tests; jobs go through ``JobContext.register_candidate``, which verifies once).

    Everything that can be refused is checked before anything is written.
    """
    manifest = verify_bundle(Path(bundle_dir))
    if manifest.parent_version:
        get_version(manifest.kernel, manifest.parent_version)
    return create_version(Path(bundle_dir), manifest, run_id=run_id, description=description, extra_tags=extra_tags)


FAULT_PAUSE = "KL_FAULT_PAUSE"  # tests: a registration point to pause at (a comma-separated list)
FAULT_DIR = "KL_FAULT_DIR"  # where the pause says it is reached (<point>.reached) and waits for <point>.go


def pause_at(point: str) -> None:
    """A fault test's chosen point: with ``KL_FAULT_PAUSE`` naming ``point``, say so and wait
    (at most ten minutes) until the test, having broken something, lets the process go on."""
    if point not in os.environ.get(FAULT_PAUSE, "").split(","):
        return
    where = Path(os.environ[FAULT_DIR])
    (where / f"{point}.reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not (where / f"{point}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def create_version(
    bundle_dir: Path,
    manifest: Manifest,
    *,
    run_id: str | None = None,
    description: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> KernelVersion:
    """Log a verified bundle to an MLflow run and create the model version with lineage tags.

    The version and its tags are one request (one transaction in MLflow's store), made after
    the whole bundle is uploaded: no version exists without its artifacts, manifest and lineage.
    A store that stops answering on the way is one line (JobError), and no version was made."""
    mlflow_client = client()
    add_pyfunc_flavor(Path(bundle_dir))  # every version is also an MLflow model (pyfunc)
    own_run = run_id is None
    if own_run:
        run = mlflow_client.create_run(
            experiment_id(), run_name=f"register-{manifest.kernel}", tags={"kernel": manifest.kernel}
        )
        run_id = run.info.run_id
    try:
        pause_at("registration.upload")
        mlflow_client.log_artifacts(run_id, str(bundle_dir), artifact_path=BUNDLE_ARTIFACT)
        pause_at("registration.uploaded")
        if not kernel_exists(manifest.kernel):
            try:
                mlflow_client.create_registered_model(
                    manifest.kernel,
                    description=f"Cognitive kernel {manifest.kernel} (managed by kernel-lifecycle)",
                )
            except _mlflow_errors():
                if not kernel_exists(manifest.kernel):  # not created concurrently: a real failure
                    raise
        tags = {**lineage_tags(manifest), **(extra_tags or {})}
        mv = mlflow_client.create_model_version(
            name=manifest.kernel,
            source=f"runs:/{run_id}/{BUNDLE_ARTIFACT}",
            run_id=run_id,
            tags=tags,
            description=description,
        )
    except KernelLifecycleError:
        raise
    except Exception as exc:
        with suppress(Exception):  # the store may be the thing that failed (then the run's FAILED says it)
            _drop_partial_bundle(run_id)
        if own_run:
            with suppress(Exception):
                mlflow_client.set_terminated(run_id, status="FAILED")
        raise JobError(
            f"the MLflow store at {get_settings().tracking_uri} failed while {manifest.kernel} was being registered "
            f"({first_line(exc)}); no version was created: retry once it answers (or has space)"
        ) from None
    if own_run:
        mlflow_client.set_terminated(run_id, status="FINISHED")
    return _to_kv(mv)


def _drop_partial_bundle(run_id: str) -> None:
    """Delete what an interrupted upload left of a run's bundle (a full disk, a lost server): no
    version points at it, and a partial bundle is no entry of the store."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    run = client().get_run(run_id)
    get_artifact_repository(run.info.artifact_uri).delete_artifacts(BUNDLE_ARTIFACT)


def first_line(exc: BaseException) -> str:
    """An exception's first line, with its class name (MLflow's messages run to pages)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def delete_version(name: str, version: str) -> None:
    client().delete_model_version(name, version)


def set_version_tag(name: str, version: str, key: str, value: str) -> None:
    client().set_model_version_tag(name, version, key, value)


def set_version_description(name: str, version: str, description: str) -> None:
    client().update_model_version(name, version, description=description)


def set_alias(name: str, alias: str, version: str) -> None:
    """Point an MLflow alias at a version. Only the lifecycle layer calls this
    (``kernel_lifecycle.aliases``), after its compare-and-set and audit row."""
    client().set_registered_model_alias(name, alias, version)


def alias_targets(name: str) -> dict[str, str]:
    """Every alias MLflow holds for a kernel: alias -> version."""
    return {a: str(v) for a, v in (client().get_registered_model(name).aliases or {}).items()}
