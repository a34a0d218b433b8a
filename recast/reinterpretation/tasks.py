"""Celery tasks: thin, take ids, and safe to run twice."""

from __future__ import annotations

from celery import shared_task

from recast.reinterpretation import execution


@shared_task(name="recast.run_execute", acks_late=True, time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60)
def run_execute(run_id: str) -> str:
    return execution.run_execute(run_id)
