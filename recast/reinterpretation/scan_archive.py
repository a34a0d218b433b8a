"""A request's own archive: its points' archives (hard-linked, not copied), the
result table as CSV and JSON, and a record of the request, under one manifest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings

import recast
from recast.archive.builder import archive_write
from recast.reinterpretation.models import Request
from recast.reinterpretation.selectors import (
    request_runs,
    results_csv,
    run_summary,
    status_counts,
)

logger = logging.getLogger(__name__)


def request_record(request: Request) -> dict[str, Any]:
    version = request.workflow_version
    return {
        "request": str(request.id),
        "analysis": request.analysis.slug,
        "workflow": {"version": version.number, "digest": version.digest},
        "owner": request.owner.get_username() if request.owner else None,
        "status": request.status,
        "counts": status_counts(request),
        "submitted_at": request.submitted_at.isoformat(),
        "finished_at": request.finished_at.isoformat() if request.finished_at else None,
        "platform": {"recast": recast.__version__},
    }


def request_archive(request_id: Any) -> str:
    """Write the archive of a finished request; returns its path."""
    request = Request.objects.select_related(
        "analysis", "workflow_version", "owner"
    ).get(id=request_id)
    runs = request_runs(request)
    points = {
        f"points/{run.point}": Path(run.archive_path)
        for run in runs
        if run.archive_path
    }
    table = results_csv(runs)
    staging = Path(settings.RECAST_ARCHIVE_DIR) / "requests"
    staging.mkdir(parents=True, exist_ok=True)

    target = staging / str(request.id)
    documents = {
        "request.json": request_record(request),
        "results.json": {"results": [run_summary(run) for run in runs]},
    }
    digest = archive_write(
        target, points, documents, lambda folder: write_csv(folder, table)
    )
    Request.objects.filter(id=request.id).update(
        archive_path=str(target), archive_sha256=digest
    )
    logger.info("request %s archived with %d point archive(s)", request.id, len(points))
    return str(target)


def write_csv(folder: Path, table: str) -> None:
    (folder / "results.csv").write_text(table)
