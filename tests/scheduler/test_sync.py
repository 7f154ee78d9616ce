"""Policies -> scheduled jobs: add, replace, remove; invalid snapshots refused, schedule kept."""

from __future__ import annotations

import json

from kernel_lifecycle.db import repo
from kernel_lifecycle.db.engine import session_scope

CRON_AND_SUNSET = """
- name: nightly
  kind: cron
  cron: "0 3 * * *"
  plan: downskill
  retry: {max_retries: 2, backoff_seconds: 30}
- name: by-sunset
  kind: sunset
  skill: cobol
  plan: downskill
- kind: manual
  plan: downskill
"""


def _listed(cli) -> dict[str, dict]:  # noqa: ANN001
    code, out, err = cli("scheduler", "list", "--json")
    assert code == 0, err
    return {row["id"]: row for row in json.loads(out)}


def test_sync_adds_cron_and_sunset_not_manual(migrated_db: str, cli, apply_policy) -> None:  # noqa: ANN001
    apply_policy("k1", CRON_AND_SUNSET)
    code, out, err = cli("scheduler", "sync", "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["added"]) == ["k1:by-sunset:downskill", "k1:nightly:downskill"]
    jobs = _listed(cli)
    assert set(jobs) == {"k1:by-sunset:downskill", "k1:nightly:downskill"}
    assert jobs["k1:nightly:downskill"]["next_fire_time"].endswith("03:00:00+00:00")
    assert jobs["k1:by-sunset:downskill"]["next_fire_time"].startswith("2030-01-31T00:00:00")
    assert jobs["k1:nightly:downskill"]["retry"] == {"max_retries": 2, "backoff_seconds": 30.0}
    # a second sync with nothing changed touches nothing
    code, out, _ = cli("scheduler", "sync", "--json")
    assert json.loads(out)["unchanged"] == ["k1:by-sunset:downskill", "k1:nightly:downskill"]
    assert _listed(cli) == jobs


def test_edited_policy_replaces_and_removes(migrated_db: str, cli, apply_policy) -> None:  # noqa: ANN001
    apply_policy("k1", CRON_AND_SUNSET)
    assert cli("scheduler", "sync")[0] == 0
    before = _listed(cli)
    # the cron trigger is removed, the sunset moves to another day
    apply_policy(
        "k1",
        """
        - name: by-sunset
          kind: sunset
          skill: cobol
          plan: downskill
        """,
        sunset="2031-06-30",
    )
    code, out, err = cli("scheduler", "sync", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["removed"] == ["k1:nightly:downskill"]
    assert report["replaced"] == ["k1:by-sunset:downskill"]
    after = _listed(cli)
    assert set(after) == {"k1:by-sunset:downskill"}
    assert after["k1:by-sunset:downskill"]["next_fire_time"].startswith("2031-06-30")
    assert before["k1:by-sunset:downskill"]["next_fire_time"].startswith("2030-01-31")


def test_invalid_snapshot_is_refused_and_its_schedule_kept(migrated_db: str, cli, apply_policy) -> None:  # noqa: ANN001
    apply_policy("k1", CRON_AND_SUNSET)
    assert cli("scheduler", "sync")[0] == 0
    before = _listed(cli)
    # A snapshot that no longer validates (as if the schema moved on since it was applied):
    # recorded directly, because `policies apply` refuses invalid files.
    from tests.scheduler.conftest import policy_text

    bad = policy_text("k1", CRON_AND_SUNSET.replace('"0 3 * * *"', '"0 3 * * 1"').replace("by-sunset", "renamed"))
    with session_scope() as session:
        repo.record_policy_snapshot(
            session, kernel="k1", path="/srv/policies/k1.yaml", content=bad, sha256="f" * 64, applied_by="test"
        )
    apply_policy("k2", CRON_AND_SUNSET)  # another kernel, valid: still synced
    code, out, err = cli("scheduler", "sync", "--json")
    assert code == 1
    report = json.loads(out)
    assert [r["kernel"] for r in report["refused"]] == ["k1"]
    problem = report["refused"][0]["problem"]
    assert report["refused"][0]["path"] == "/srv/policies/k1.yaml"
    assert "triggers[0].cron" in problem and "day of week by name" in problem
    assert "k1" in err and "/srv/policies/k1.yaml" in err and "previous schedule is kept" in err
    assert sorted(report["kept_refused"]) == ["k1:by-sunset:downskill", "k1:nightly:downskill"]
    assert sorted(report["added"]) == ["k2:by-sunset:downskill", "k2:nightly:downskill"]
    after = _listed(cli)
    assert {k: v for k, v in after.items() if k.startswith("k1:")} == before


def test_policy_withdrawn_removes_its_jobs(migrated_db: str, cli, apply_policy) -> None:  # noqa: ANN001
    apply_policy("k1", CRON_AND_SUNSET)
    assert cli("scheduler", "sync")[0] == 0
    apply_policy("k1", "")  # the same kernel, now without triggers
    code, out, err = cli("scheduler", "sync", "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["removed"]) == ["k1:by-sunset:downskill", "k1:nightly:downskill"]
    assert _listed(cli) == {}
