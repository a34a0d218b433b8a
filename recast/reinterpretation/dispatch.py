"""Hand queued runs, in batches, to whoever executes them.

A request's runs go out in batches (see ``batch_plan``): one execution of the
workflow for several points when the workflow accepts them, else one per run.
With a broker, a Celery task per batch, spread over the workers. Without one,
the server (``recast serve``) runs batches on background threads of its own
process, so a submit still returns at once; elsewhere (tests, ``recast run``)
they run before ``dispatch`` returns, on as many threads as there are cores
(the step processes do the work; the threads only wait for them).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from recast.core.threads import LazyPool

logger = logging.getLogger(__name__)
pool = LazyPool(lambda: int(settings.RECAST_INPROCESS_WORKERS), "recast-run")


def batch_size(points: int, slots: int, max_points: int) -> int:
    """Points per batch: enough batches for twice the slots that run them at
    once (so a slow batch does not leave the other slots idle at the end),
    never more than the workflow accepts, and at least one."""
    return max(1, min(max_points, math.ceil(points / (2 * max(slots, 1)))))


def batch_plan(run_ids: list[str]) -> list[list[str]]:
    """``run_ids`` grouped into batches: per request (one workflow version),
    in point order, sized by ``batch_size``; one run each for a workflow that
    declares no batch."""
    from recast.reinterpretation.models import Run

    rows = (
        Run.objects.filter(id__in=run_ids)
        .order_by("request_id", "point")
        .values_list("id", "request_id", "request__workflow_version__batch")
    )
    groups: dict[Any, tuple[dict[str, Any], list[str]]] = {}
    for run_id, request_id, batch in rows:
        groups.setdefault(request_id, (batch or {}, []))[1].append(str(run_id))
    plan = []
    for batch, ids in groups.values():
        size = (
            batch_size(len(ids), settings.RECAST_SCAN_SLOTS, batch["max_points"])
            if batch
            else 1
        )
        plan += [ids[i : i + size] for i in range(0, len(ids), size)]
    return plan


def runs_in_thread(run_ids: list[str]) -> None:
    from recast.reinterpretation import execution

    try:
        execution.runs_execute(run_ids)
    except Exception:
        logger.exception("runs %s: in-process execution failed", ", ".join(run_ids))
    finally:
        close_old_connections()  # threads must not keep connections open


def run_here(plan: list[list[str]]) -> None:
    """Run every batch before returning: on threads, one per core, unless the
    caller holds a transaction (other connections would not see its rows)."""
    from recast.reinterpretation import execution

    threads = min(len(plan), settings.RECAST_SCAN_SLOTS)
    if threads <= 1 or connection.in_atomic_block:
        for batch in plan:
            execution.runs_execute(batch)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="recast-run") as here:
        list(here.map(runs_in_thread, plan))


def dispatch(run_ids: list[str]) -> None:
    plan = batch_plan(run_ids)
    if settings.CELERY_BROKER_URL:
        from recast.reinterpretation import tasks

        for batch in plan:
            tasks.runs_execute.delay(batch)
    elif settings.RECAST_INPROCESS_WORKERS:
        for batch in plan:
            pool().submit(runs_in_thread, batch)
    else:
        run_here(plan)
    logger.info("%d run(s) handed out in %d batch(es)", len(run_ids), len(plan))


def resume() -> None:
    """In-process mode only: each server process, as it starts, hands its
    threads what no live process holds (queued runs, and silent ones).

    Runs left running by the previous server were queued again by
    ``recast serve`` before its processes started; doing that here would take
    live runs from a sibling process. Several processes may hand out the
    same queued run: starting a run is a conditional update, so it runs once.
    """
    if settings.CELERY_BROKER_URL or not settings.RECAST_INPROCESS_WORKERS:
        return
    from recast.reinterpretation.services import runs_resumable

    pending = runs_resumable()
    if pending:
        logger.info("resuming %d queued run(s)", len(pending))
        dispatch(pending)
