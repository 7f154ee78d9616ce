"""APScheduler 3 pieces made safe for several schedulers on one job store.

- :class:`SharedJobStore`: the SQLAlchemyJobStore (table ``apscheduler_jobs`` in the lifecycle
  DB) whose writes from the *run loop* tolerate other processes. Every scheduler loads the same
  due job and, after submitting it, writes the job back with its next run time. Stock
  APScheduler raises JobLookupError (killing the scheduler thread) when another process removed
  the job meanwhile, and a late writer can put back a job that ``sync`` has just replaced. Here
  the write-back is a compare-and-set under a row lock: skipped when the row is gone, when its
  definition (``spec`` hash) changed, or when its next run time is already later. The lease, not
  this store, decides who runs a fire; the store only must never crash or rewind. Once shut
  down it hands out no due jobs (:meth:`SharedJobStore.get_due_jobs` says why).
- :class:`LeaseExecutor`: a thread pool that passes each fire's *scheduled* time to the job
  function (APScheduler 3 does not), since the lease key is (trigger, scheduled fire time).

The store extends APScheduler 3 through the job store's public methods only; the executor
through the one method every executor implements (see :class:`LeaseExecutor` for why).
"""

from __future__ import annotations

import copy
import pickle
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp

if TYPE_CHECKING:
    from concurrent.futures import Future

    from apscheduler.events import JobExecutionEvent
    from apscheduler.job import Job
    from apscheduler.schedulers.base import BaseScheduler

TABLE = "apscheduler_jobs"


class SharedJobStore(SQLAlchemyJobStore):
    def __init__(self, url: str) -> None:
        super().__init__(url=url, tablename=TABLE)
        self._closed = False

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        self._closed = False
        super().start(scheduler, alias)

    def shutdown(self) -> None:
        self._closed = True
        super().shutdown()

    def get_due_jobs(self, now: datetime) -> list[Job]:
        """Nothing once shut down: APScheduler 3's loop runs one more round after ``shutdown()``.

        The loop re-checks the scheduler's state only after waking, and ``shutdown()`` wakes it
        after stopping the executors and then the job stores (both under the job stores' lock,
        which the loop also takes). That round would submit the due jobs to the stopped
        executors, fail, and still write their next run time back: the fire would be lost for
        every scheduler. (A paused scheduler processes nothing by itself; this covers pausing,
        then shutting down. The in-memory store empties itself on shutdown.)
        """
        return [] if self._closed else super().get_due_jobs(now)

    def update_job(self, job: Job) -> None:
        """The run loop's write-back of a job's next run time, as a compare-and-set."""
        columns = self.jobs_t.c
        with self.engine.begin() as connection:
            row = connection.execute(
                self.jobs_t.select().where(columns.id == job.id).with_for_update()
            ).first()
            if row is None:
                return  # removed by `sync` or by another scheduler: nothing to advance
            stored = pickle.loads(row.job_state)
            if (stored.get("kwargs") or {}).get("spec") != (job.kwargs or {}).get("spec"):
                return  # `sync` replaced the definition after we loaded it: ours is stale
            new_time = datetime_to_utc_timestamp(job.next_run_time)
            if row.next_run_time is not None and new_time is not None and row.next_run_time >= new_time:
                return  # another scheduler advanced it already (never move it back)
            connection.execute(
                self.jobs_t.update()
                .where(columns.id == job.id)
                .values(next_run_time=new_time, job_state=pickle.dumps(job.__getstate__(), self.pickle_protocol))
            )

    def replace_job(self, job: Job) -> None:
        """``sync``'s unconditional write of a changed definition."""
        super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        # a one-shot job fired by two schedulers is removed by both: the second finds nothing
        try:
            super().remove_job(job_id)
        except JobLookupError:
            pass


def run_fires(job: Job, jobstore_alias: str, run_times: list[datetime], logger_name: str) -> list[JobExecutionEvent]:
    """APScheduler's own ``run_job`` once per fire, each on a copy of the job whose kwargs carry
    ``scheduled_fire_time`` (the copy is made from the job's state, as the store pickles it)."""
    events = []
    for run_time in run_times:
        fire = copy.copy(job)
        fire.kwargs = {**job.kwargs, "scheduled_fire_time": run_time}
        events += run_job(fire, jobstore_alias, [run_time], logger_name)
    return events


class LeaseExecutor(ThreadPoolExecutor):
    """The stock thread pool, running :func:`run_fires` instead of ``run_job``.

    Why ``_do_submit_job`` (underscored) is overridden: APScheduler 3 calls a job function as
    ``func(*args, **kwargs)`` and has no public way to tell it which scheduled time it runs for
    (4.x adds ``current_job``). Listeners do not help: ``EVENT_JOB_SUBMITTED`` is dispatched
    after the job was handed to the pool, from the scheduler's thread, and carries no way back
    into the call. The job function cannot derive the time either (after downtime, coalescing,
    or a late wake-up it is not "now"). ``_do_submit_job`` is the abstract method of
    ``BaseExecutor`` that every executor implements (``submit_job`` keeps the instance count
    around it); the body is the stock pool's, with :func:`run_fires` in place of ``run_job``.
    """

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def callback(future: Future[list[JobExecutionEvent]]) -> None:
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(run_fires, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(callback)
