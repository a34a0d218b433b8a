"""Hand queued runs to whoever executes them.

With a broker, a Celery task per run. Without one, the server (``recast
serve``) runs them on a small pool of background threads in its own process,
so a submit still returns at once; elsewhere (tests, ``recast run``) they run
right away in the caller.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.RECAST_INPROCESS_WORKERS,
                thread_name_prefix="recast-run",
            )
        return _pool


def run_in_thread(run_id: str) -> None:
    from recast.reinterpretation import execution

    try:
        execution.run_execute(run_id)
    except Exception:
        logger.exception("run %s: in-process execution failed", run_id)
    finally:
        close_old_connections()  # threads must not keep connections open


def dispatch(run_ids: list[str]) -> None:
    if settings.CELERY_BROKER_URL:
        from recast.reinterpretation import tasks

        for run_id in run_ids:
            tasks.run_execute.delay(run_id)
    elif settings.RECAST_INPROCESS_WORKERS:
        for run_id in run_ids:
            pool().submit(run_in_thread, run_id)
    else:
        from recast.reinterpretation import execution

        for run_id in run_ids:
            execution.run_execute(run_id)


def resume() -> None:
    """In-process mode only: queue again what an earlier server process left.

    A run left running was interrupted (there is no other process that could
    hold it), so it goes back to queued and starts over.
    """
    if settings.CELERY_BROKER_URL or not settings.RECAST_INPROCESS_WORKERS:
        return
    from recast.reinterpretation.models import Run, Status

    Run.objects.filter(status=Status.RUNNING).update(status=Status.QUEUED)
    pending = [
        str(i)
        for i in Run.objects.filter(status=Status.QUEUED).values_list("id", flat=True)
    ]
    if pending:
        logger.info("resuming %d queued run(s)", len(pending))
        dispatch(pending)
