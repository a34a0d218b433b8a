"""Hand queued runs to whoever executes them, as pulls.

A pull says "execute the next fair batch": the worker that takes it chooses
and claims, at that moment, whose points run next and how many share one
workflow execution (see ``fairshare``), so a point submitted after a long
scan waits for the batches already running, not for the whole scan. With a
broker, pulls are Celery tasks spread over the workers. Without one, the
server (``recast serve``) runs them on background threads of its own process,
so a submit still returns at once; elsewhere (tests, in-process callers) the
given runs are executed before ``dispatch`` returns, on as many threads as
there are slots (the step processes do the work; the threads only wait).
"""

from __future__ import annotations

import logging
import math
import threading
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
    """``run_ids`` grouped into batches as a worker alone would claim them:
    per request (one workflow version), in point order, sized by
    ``batch_size`` and at most RECAST_BATCH_MAX; one run each for a workflow
    that declares no batch."""
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
        size = points_per_batch(len(ids), batch)
        plan += [ids[i : i + size] for i in range(0, len(ids), size)]
    return plan


def points_per_batch(points: int, batch: dict[str, Any]) -> int:
    """How many of a request's ``points`` one batch takes, for its workflow
    version's ``batch`` declaration (empty: one point per execution)."""
    if not batch:
        return 1
    size = batch_size(points, settings.RECAST_SCAN_SLOTS, batch["max_points"])
    return min(size, settings.RECAST_BATCH_MAX)


def batches_of(points: int, batch: dict[str, Any]) -> int:
    """How many batches one request of ``points`` points makes."""
    return math.ceil(points / points_per_batch(points, batch))


def pulls_for(run_ids: list[str], batches: int | None = None) -> int:
    """Pulls to hand out for ``run_ids``: one per planned batch, so that as
    many workers start as before, at most twice the slots (each pull that
    finds work hands out the next, so that many keep every slot busy, and a
    sweep of a long queue does not flood the broker). ``batches``: the
    number of batches, when the caller knows it; planned from the runs'
    rows otherwise."""
    if batches is None:
        batches = len(batch_plan(run_ids))
    return min(batches, 2 * settings.RECAST_SCAN_SLOTS)


def pull_in_thread() -> None:
    try:
        pull()
    except Exception:
        logger.exception("in-process pull failed")
    finally:
        close_old_connections()  # threads must not keep connections open


def hand_out(pulls: int) -> None:
    """Queue ``pulls`` requests for "the next fair batch" to the workers."""
    if settings.CELERY_BROKER_URL:
        from recast.reinterpretation import tasks

        for _ in range(pulls):
            tasks.runs_next.delay()
    else:
        for _ in range(pulls):
            pool().submit(pull_in_thread)


def pull() -> dict[str, str]:
    """What a worker does with a pull: claim the next fair batch, execute it,
    and hand out one more pull (the batch may have been smaller than planned,
    or its owner's running limit may have held their other points back), so
    that every chain of pulls runs until nothing waits. Returns each point's
    status; {} when nothing waited, and then no pull follows."""
    from recast.reinterpretation import execution

    statuses = execution.runs_next()
    if not statuses:
        return statuses
    try:
        hand_out(1)
    except Exception:
        # The broker is away (a restart): this chain ends here, the others
        # go on, and the sweeper hands out pulls if every chain ended.
        logger.warning("the next pull could not be queued", exc_info=True)
    return statuses


def drain(run_ids: list[str]) -> None:
    """Execute fair batches of ``run_ids`` until none of them waits."""
    from recast.reinterpretation import execution

    try:
        while execution.runs_next(run_ids):
            pass
    finally:
        if threading.current_thread() is not threading.main_thread():
            close_old_connections()  # threads must not keep connections open


def run_here(run_ids: list[str]) -> None:
    """Run every point before returning: on threads, one per slot, unless the
    caller holds a transaction (other connections would not see its rows)."""
    threads = min(len(batch_plan(run_ids)), settings.RECAST_SCAN_SLOTS)
    if threads <= 1 or connection.in_atomic_block:
        drain(run_ids)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="recast-run") as here:
        list(here.map(drain, [run_ids] * threads))


def dispatch(run_ids: list[str], batches: int | None = None) -> None:
    """Hand ``run_ids`` to whoever executes them: pulls to the workers (a
    broker) or to the server's threads; else execute them before returning.
    ``batches`` as for ``pulls_for``."""
    if not settings.CELERY_BROKER_URL and not settings.RECAST_INPROCESS_WORKERS:
        run_here(run_ids)
        return
    pulls = pulls_for(run_ids, batches)
    hand_out(pulls)
    logger.info("%d run(s) queued; %d pull(s) handed out", len(run_ids), pulls)


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
