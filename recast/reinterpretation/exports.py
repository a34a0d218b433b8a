"""Gather a request's analysis and points and hand them to the export writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings

import recast
from recast.archive import exports
from recast.catalogue.models import Analysis
from recast.core.errors import Conflict, InvalidInput
from recast.reinterpretation.models import Request
from recast.reinterpretation.selectors import request_runs, run_summary
from recast.storage.services import blob_read

TARGETS = ("cap", "hepdata", "inspire")


def analysis_document(
    analysis: Analysis, with_likelihood: bool = False
) -> dict[str, Any]:
    document = {
        "slug": analysis.slug,
        "title": analysis.title,
        "collaboration": analysis.collaboration,
        "abstract": analysis.abstract,
        "keywords": analysis.keywords,
        "references": analysis.references,
        "workflow": analysis.current_workflow().spec,
        "url": f"{settings.RECAST_PUBLIC_URL}/api/v1/analyses/{analysis.slug}/",
    }
    if with_likelihood and analysis.bkgonly_sha256:
        document["likelihood"] = json.loads(blob_read(analysis.bkgonly_sha256))
    return document


def request_document(request: Request) -> dict[str, Any]:
    return {
        "id": str(request.id),
        "owner": request.owner.get_username() if request.owner else None,
        "finished_at": request.finished_at.isoformat() if request.finished_at else None,
        "platform_version": recast.__version__,
    }


def request_export(request: Request, target: str, outdir: Path) -> list[Path]:
    """Write the ``target`` export of a finished request into ``outdir``."""
    if target not in TARGETS:
        raise InvalidInput(f"$.to: must be one of {', '.join(TARGETS)}, not '{target}'")
    if request.status not in ("succeeded", "failed"):
        raise Conflict(
            f"request {request.id} is {request.status}; export it once it has finished"
        )

    analysis = analysis_document(request.analysis, with_likelihood=target == "cap")
    analysis["workflow"] = request.workflow_version.spec
    points = [run_summary(run) for run in request_runs(request)]
    about = request_document(request)
    try:
        if target == "cap":
            return exports.write_cap(analysis, about, points, outdir)
        if target == "hepdata":
            written = [exports.write_hepdata(analysis, about, points, outdir)]
            return written
        return exports.write_inspire(analysis, about, points, outdir)
    except exports.ExportError as exc:
        raise Conflict(str(exc)) from None
