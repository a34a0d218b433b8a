"""Celery tasks of quotas: thin and safe to run twice."""

from __future__ import annotations

from recast.celery import app
from recast.quotas import services


# Celery ships no type information; the task body is typed.
@app.task(name="recast.runs_release_all", time_limit=300)  # type: ignore[untyped-decorator]
def runs_release_all() -> list[str]:
    return services.runs_release_all()
