"""Fault (3): a scheduler on another host is killed with -9 in the middle of a fire. The other
scheduler, which cannot ask that host whether the process lives, takes the fire over once its
lease has gone unrenewed for ``KL_SCHEDULER_LEASE_SECONDS``, and the fire runs to its end once.

The victim runs in a UTS namespace of its own (``unshare --uts``, root) under another host name,
so its owner ``other-host:PID`` is as unknowable to the survivor as a real second machine's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from kernel_lifecycle.db.engine import session_scope
from kernel_lifecycle.db.models import Job, SchedulerLease
from kernel_lifecycle.scheduler import leases
from tests.scheduler.procs import scheduler_process, wait_for

LEASE = 4.0
TRIGGER = "far:tick:downskill"
# no retry in the rule: the takeover is not a retry of a failed plan, it is the fire not yet run
POLICY = '- {name: tick, kind: cron, cron: "* * * * *", plan: downskill, retry: {max_retries: 0, backoff_seconds: 1}}'
OTHER_HOST = ("unshare", "--uts", "sh", "-c", 'hostname other-host && exec "$@"', "sh")


def _can_unshare_uts() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


@pytest.fixture
def far_db(scheduled_postgres, kl_home: Path) -> str:  # noqa: ANN001
    return scheduled_postgres("far", POLICY, "*/4")


def _rows(url: str) -> tuple[dict, dict]:
    with session_scope(url) as session:
        rows = {(r.trigger_id, leases.as_utc(r.fire_time)): r for r in session.scalars(select(SchedulerLease))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
        session.expunge_all()
    return rows, jobs


def _victims_running_job(url: str) -> Job | None:
    with session_scope(url) as session:
        job = session.scalars(select(Job).where(Job.state == "running", Job.owner.startswith("other-host:"))).first()
        if job is not None:
            session.expunge(job)
        return job


@pytest.mark.skipif(not _can_unshare_uts(), reason="needs `unshare --uts` (root) to give the victim another host name")
def test_a_dead_hosts_fire_is_taken_over_after_its_lease(far_db: str, kl_home: Path, tmp_path: Path) -> None:
    url, env = far_db, {"KL_SCHEDULER_LEASE_SECONDS": str(LEASE)}
    victim = scheduler_process(url, kl_home, "--for", "300", "--poll", "0.5", fire_seconds=300, log=tmp_path / "victim.log",
                               prefix=OTHER_HOST, extra_env=env)
    survivor = None
    try:
        job = wait_for(lambda: _victims_running_job(url), 120, "the victim's fire to start its job")
        survivor = scheduler_process(url, kl_home, "--for", "300", "--poll", "0.5", fire_seconds=0.3, log=tmp_path / "survivor.log",
                                     extra_env=env)
        wait_for(lambda: _rows(url)[0], 5, "the lease")
        # the survivor watches the victim renew its lease for a while: a live lease is left alone
        wait_for(lambda: any(r.owner.startswith(f"{os.uname().nodename}:") and r.status == "done" for r in _rows(url)[0].values()),
                 120, "the survivor to run a fire of its own")
        rows, _ = _rows(url)
        # (the victim also records the ticks it skips while busy as missed)
        [key] = [k for k, r in rows.items() if r.owner.startswith("other-host:") and r.status == "running"]
        assert key[0] == TRIGGER
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        killed_at = datetime.now(timezone.utc)
        retry = (leases.retry_id(TRIGGER, 1), key[1])
        wait_for(lambda: (r := _rows(url)[0].get(retry)) is not None and r.status == "done", 120, "the takeover to run")
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (victim, survivor):
            if proc is not None:
                proc.wait(timeout=90)
    survivor_log = (tmp_path / "survivor.log").read_text()
    assert "Traceback" not in survivor_log, survivor_log[-3000:]
    rows, jobs = _rows(url)
    dead = rows[key]
    assert dead.status == "failed" and dead.job_id == job.id, dead.message
    assert f"its lease was not renewed for {LEASE:g} s (owner other-host:{victim.pid})" in dead.message
    taken_after = (leases.as_utc(dead.released_at) - killed_at).total_seconds()
    # unrenewed for one lease of the survivor's watching: from 2/3 of a lease (the victim's last
    # renewal came up to a third of a lease before its death) to the bound, two leases
    assert 2 * LEASE / 3 - 0.5 <= taken_after <= 2 * LEASE + 5, taken_after  # (+5: polls and writes on a loaded machine)
    assert jobs[job.id].state == "failed" and "its lease was not renewed" in jobs[job.id].error
    # the fire ran to its end once: the dead host's job and the takeover's, nothing more
    fire_jobs = [j for j in jobs.values() if j.trigger_id in (leases.run_id(TRIGGER, key[1]), leases.run_id(retry[0], key[1]))]
    assert sorted(j.state for j in fire_jobs) == ["failed", "succeeded"], [(j.trigger_id, j.state) for j in fire_jobs]
    assert rows[retry].owner.split(":")[0] == os.uname().nodename
    assert (leases.retry_id(TRIGGER, 2), key[1]) not in rows
