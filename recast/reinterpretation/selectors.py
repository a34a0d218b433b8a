"""Reads of requests and runs."""

from __future__ import annotations

from typing import Any

from recast.core.errors import NotFound
from recast.reinterpretation.models import Request, Run


def request_get(request_id: str) -> Request:
    try:
        return Request.objects.select_related("analysis").get(id=request_id)
    except (Request.DoesNotExist, ValueError):
        raise NotFound(f"no request {request_id}") from None


def request_runs(request: Request) -> list[Run]:
    return list(request.runs.order_by("point"))


def run_summary(run: Run) -> dict[str, Any]:
    """The numbers of one run, flat, as the CLI and exports show them."""
    result = run.result or {}
    fit = result.get("fit", {})
    return {
        "run": str(run.id),
        "point": run.point,
        "status": run.status,
        "model_parameters": run.model_parameters,
        "cls_obs": result.get("cls_obs"),
        "cls_exp": result.get("cls_exp"),
        "mu_up_obs": result.get("mu_up_obs"),
        "mu_up_exp": result.get("mu_up_exp"),
        "excluded": result.get("excluded"),
        "fit_status": fit.get("status"),
        "fit_message": fit.get("message"),
        "error": run.error,
        "failed_step": run.failed_step,
        "archive": run.archive_path,
        "archive_sha256": run.archive_sha256,
    }
