"""Jobs that change kernels: one recipe module per kind (adapt, distill, upskill, downskill), each read
top to bottom, a table of them (``recipes``), one typed config per kind (``config``), one job
context every recipe opens and closes (``context``), and one entry that runs any of them
(``run_job``; ``payloads.submit_job`` runs it on the configured executor)."""

from __future__ import annotations

from kernel_lifecycle.jobs.recipes import KINDS, RECIPES, from_policy, parse_config, run_job

__all__ = ["KINDS", "RECIPES", "from_policy", "parse_config", "run_job"]
