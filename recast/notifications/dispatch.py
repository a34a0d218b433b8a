"""Hand deliveries to whoever sends them, the way runs are dispatched: a
Celery task (with declared retries) when a broker is configured; otherwise a
small pool of background threads of the server (``recast serve``), or right
away in the caller (tests, management commands), retrying with backoff in
the same thread."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections

from recast.core.threads import LazyPool
from recast.notifications import services

logger = logging.getLogger(__name__)
# Its own pool: a receiver that is down must not hold a thread that runs points.
POOL_THREADS = 2
pool = LazyPool(lambda: POOL_THREADS, "recast-notify")


def deliver_with_retries(delivery_id: str) -> None:
    while (wait := services.delivery_attempt(delivery_id)) is not None:
        time.sleep(wait)


def deliver_in_thread(delivery_id: str) -> None:
    try:
        deliver_with_retries(delivery_id)
    except Exception:
        logger.exception("delivery %s: in-process sending failed", delivery_id)
    finally:
        close_old_connections()  # threads must not keep connections open


def deliver(delivery_ids: list[str]) -> None:
    if settings.CELERY_BROKER_URL:
        from recast.notifications import tasks

        for delivery_id in delivery_ids:
            tasks.delivery_send.delay(delivery_id)
    elif settings.RECAST_INPROCESS_WORKERS:
        for delivery_id in delivery_ids:
            pool().submit(deliver_in_thread, delivery_id)
    else:
        for delivery_id in delivery_ids:
            deliver_with_retries(delivery_id)
