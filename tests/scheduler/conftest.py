"""Scheduler test helpers: policies written and applied for real (validated, snapshotted)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

BASE = """\
schema_version: 1
kernel: {kernel}
owners: [platform-ml]
skills:
  retained:
    - name: python
      scorer: python_tests
      floor: 0.3
  retired:
    - name: cobol
      scorer: cobol_compile
      ceiling: 0.05
      sunset: {sunset}
plans:
  downskill:
    skill: cobol
    method: npo
    retain: [python]
approvals:
  approvers: [alice]
  auto_promote: true
"""


def policy_text(kernel: str, triggers: str, *, sunset: str = "2030-01-31") -> str:
    text = BASE.format(kernel=kernel, sunset=sunset)
    if triggers.strip():
        text += "triggers:\n" + textwrap.indent(textwrap.dedent(triggers).strip("\n"), "  ") + "\n"
    return text


@pytest.fixture
def apply_policy(tmp_path: Path):
    """Write ``kernel``'s policy file and apply it (validation first, as `policies apply` does)."""
    from kernel_lifecycle.policy.loader import load_policy
    from kernel_lifecycle.policy_apply import apply_policy as apply

    def _apply(kernel: str, triggers: str, **kw: str) -> Path:
        path = tmp_path / f"{kernel}.yaml"
        path.write_text(policy_text(kernel, triggers, **kw))
        apply(load_policy(path), actor="test")
        return path

    return _apply


@pytest.fixture
def scheduled_postgres(postgres_url: str, monkeypatch, cli, apply_policy):  # noqa: ANN001
    """The lifecycle DB on PostgreSQL, migrated, ``kernel``'s policy applied and its triggers
    synced to fire on the test second ``every`` (a cron second field such as ``*/4``)."""
    from kernel_lifecycle.db.engine import upgrade

    def _make(kernel: str, triggers: str, every: str) -> str:
        monkeypatch.setenv("KL_DATABASE_URL", postgres_url)
        upgrade(postgres_url)
        apply_policy(kernel, triggers)
        code, _, err = cli("scheduler", "sync", "--test-second", every)
        assert code == 0, err
        return postgres_url

    return _make
