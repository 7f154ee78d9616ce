"""Jobs that change kernels: one recipe module per kind (distill, upskill, downskill), each read
top to bottom (resolve parent, load, train, measure, choose, register), one typed config per
kind (``jobs.config``), and one entry that runs any of them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_lifecycle.registry.client import KernelVersion


def run_job(config: Any, *, actor: str, trigger_id: str | None = None, progress: bool = False) -> KernelVersion:
    """Run the recipe of ``config.kind`` with ``config`` (a ``jobs.config`` model or its JSON
    form); returns the version it registered as candidate."""
    from kernel_lifecycle.jobs.config import parse_config

    if isinstance(config, (dict, str)):
        config = parse_config(config)
    recipe = importlib.import_module(f"kernel_lifecycle.jobs.{config.kind}")
    return recipe.run(config, actor=actor, trigger_id=trigger_id, progress=progress)
