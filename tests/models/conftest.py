"""The real SmolLM2 base, converted once per test run and shared by every xdist worker.

The converted cache lives in one KL_HOME under the run's shared temp folder. Every worker calls
``resolve_base("smollm2")`` on it: the first converts (~45 s on 2 busy cores), the others wait on
the conversion's own file lock and find the entry, which is the concurrency the cache promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.models.bases import ResolvedBase, resolve_base
from kernel_lifecycle.settings import get_settings
from tests.conftest import SKIP_SMOLLM2, smollm2_installed  # noqa: F401 - the shared SmolLM2 cache lives there

@pytest.fixture
def smollm2(smollm2_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResolvedBase]:
    """``smollm2`` resolved from the shared cache, with KL_HOME pointing at it for the test."""
    monkeypatch.setenv("KL_HOME", str(smollm2_home))
    get_settings.cache_clear()
    yield resolve_base("smollm2")
    get_settings.cache_clear()
