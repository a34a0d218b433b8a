"""Celery tasks: thin, take ids, and safe to run twice.

Tasks bind to recast's own app, not to "the current app": importing packtivity
creates a Celery app of its own (pickle, another broker) that would otherwise
take over.
"""

from __future__ import annotations

from recast.celery import app
from recast.reinterpretation import dispatch, execution, services

SIX_HOURS = 6 * 3600


# Celery ships no type information; the task body is typed.
@app.task(  # type: ignore[untyped-decorator]
    name="recast.run_execute",
    acks_late=True,
    time_limit=SIX_HOURS,
    soft_time_limit=SIX_HOURS - 60,
)
def run_execute(run_id: str) -> str:
    return execution.run_execute(run_id)


# Celery ships no type information; the task body is typed. Runs given by id:
# what workers of an earlier version queued (dispatch now hands out pulls).
@app.task(  # type: ignore[untyped-decorator]
    name="recast.runs_execute",
    acks_late=True,
    time_limit=SIX_HOURS,
    soft_time_limit=SIX_HOURS - 60,
)
def runs_execute(run_ids: list[str]) -> dict[str, str]:
    return execution.runs_execute(run_ids)


# Celery ships no type information; the task body is typed. A pull: the
# worker that executes it chooses the next fair batch then (see
# recast.reinterpretation.fairshare). With acks_late and a prefetch of one
# (settings), a worker killed mid-batch leaves it queued; its runs are taken
# over, once their leases lapse, by whichever pull comes next.
@app.task(  # type: ignore[untyped-decorator]
    name="recast.runs_next",
    acks_late=True,
    time_limit=SIX_HOURS,
    soft_time_limit=SIX_HOURS - 60,
)
def runs_next() -> dict[str, str]:
    return dispatch.pull()


# Celery ships no type information; the task body is typed.
@app.task(name="recast.runs_requeue_stale", time_limit=300)  # type: ignore[untyped-decorator]
def runs_requeue_stale() -> list[str]:
    return services.runs_requeue_stale()
