"""APScheduler 3 pieces made safe for several schedulers on one job store.

- :class:`SharedJobStore`: the SQLAlchemyJobStore (table ``apscheduler_jobs`` in the lifecycle
  DB) whose writes from the *run loop* tolerate other processes. Every scheduler loads the same
  due job and, after submitting it, writes the job back with its next run time. Stock
  APScheduler raises JobLookupError (killing the scheduler thread) when another process removed
  the job meanwhile, and a late writer can put back a job that ``sync`` has just replaced. Here
  the write-back is a compare-and-set under a row lock: skipped when the row is gone, when its
  definition (``spec`` hash) changed, or when its next run time is already later. The lease, not
  this store, decides who runs a fire; the store only must never crash or rewind.
- :class:`LeaseExecutor`: a thread pool that passes each fire's *scheduled* time to the job
  function (APScheduler 3 does not), since the lease key is (trigger, scheduled fire time).
"""

from __future__ import annotations

import logging
import pickle
import sys
import traceback
from datetime import datetime, timedelta, timezone
from traceback import format_tb

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp

TABLE = "apscheduler_jobs"


class SharedJobStore(SQLAlchemyJobStore):
    def __init__(self, url: str) -> None:
        super().__init__(url=url, tablename=TABLE)

    def update_job(self, job) -> None:  # noqa: ANN001
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

    def replace_job(self, job) -> None:  # noqa: ANN001
        """``sync``'s unconditional write of a changed definition."""
        super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        # a one-shot job fired by two schedulers is removed by both: the second finds nothing
        try:
            super().remove_job(job_id)
        except JobLookupError:
            pass


def run_with_fire_time(job, jobstore_alias: str, run_times: list[datetime], logger_name: str) -> list:  # noqa: ANN001
    """APScheduler's ``run_job`` with ``scheduled_fire_time=`` passed to the job function."""
    events = []
    logger = logging.getLogger(logger_name)
    for run_time in run_times:
        if job.misfire_grace_time is not None:
            late = datetime.now(timezone.utc) - run_time
            if late > timedelta(seconds=job.misfire_grace_time):
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, jobstore_alias, run_time))
                logger.warning("fire %s of %s missed by %s (beyond the misfire grace)", run_time, job.id, late)
                continue
        try:
            retval = job.func(*job.args, scheduled_fire_time=run_time, **job.kwargs)
        except BaseException:
            exc, tb = sys.exc_info()[1:]
            events.append(
                JobExecutionEvent(
                    EVENT_JOB_ERROR, job.id, jobstore_alias, run_time, exception=exc, traceback="".join(format_tb(tb))
                )
            )
            logger.exception("fire %s of %s raised", run_time, job.id)
            traceback.clear_frames(tb)
            del tb
        else:
            events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, jobstore_alias, run_time, retval=retval))
    return events


class LeaseExecutor(ThreadPoolExecutor):
    def _do_submit_job(self, job, run_times) -> None:  # noqa: ANN001
        def callback(future) -> None:  # noqa: ANN001
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(run_with_fire_time, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(callback)


def safe_background_scheduler(**options):  # noqa: ANN003, ANN201
    """A BackgroundScheduler that processes jobs only while running.

    APScheduler 3's main loop runs ``_process_jobs`` once more after ``shutdown()`` (the loop
    re-checks its state only after waking): with the executors already shut down the submission
    fails, yet the job's next run time is still advanced in the shared store, so the fire would
    be lost for every scheduler. A paused scheduler (``sync``/``list``) must never process either.
    """
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.base import STATE_RUNNING

    class SafeBackgroundScheduler(BackgroundScheduler):
        def _process_jobs(self):  # noqa: ANN202
            if self.state != STATE_RUNNING:
                return None
            return super()._process_jobs()

    return SafeBackgroundScheduler(**options)
