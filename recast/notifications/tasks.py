"""Celery tasks of notifications: thin, take ids, safe to run twice."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from recast.celery import app
from recast.notifications import services


# Celery ships no type information; the task body is typed. The delivery
# counts its own attempts; Celery's limit only stops a runaway loop.
@app.task(  # type: ignore[untyped-decorator]
    name="recast.delivery_send",
    bind=True,
    acks_late=True,
    max_retries=settings.RECAST_NOTIFY_ATTEMPTS,
    time_limit=120,
)
def delivery_send(self: Any, delivery_id: str) -> None:
    wait = services.delivery_attempt(delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)
