"""What a notification says: the JSON document (webhooks) and the e-mail."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from recast.reinterpretation.models import FINISHED, Request, Status, Validation
from recast.reinterpretation.selectors import request_runs, run_summary, status_counts

# A scan of thousands of points would make an unreadable e-mail; the whole
# table is one link away.
MAX_RESULTS = 50


def api_url(path: str) -> str:
    return f"{settings.RECAST_PUBLIC_URL}/api/v1/{path}"


def request_document(request: Request) -> dict[str, Any]:
    counts = status_counts(request)
    base = f"requests/{request.id}/"
    return {
        "id": str(request.id),
        "analysis": request.analysis.slug,
        "status": request.status,
        "is_scan": request.is_scan,
        "points": sum(counts.values()),
        "finished_points": sum(counts[s] for s in FINISHED),
        "counts": {status: n for status, n in counts.items() if n},
        "submitted_at": request.submitted_at.isoformat(),
        "finished_at": request.finished_at.isoformat() if request.finished_at else None,
        "url": api_url(base),
        "results_url": api_url(f"{base}results/"),
        "archive_url": api_url(f"{base}archive/"),
    }


def median(band: list[float] | None) -> float | None:
    return band[2] if band else None


def short_result(run_row: dict[str, Any]) -> dict[str, Any]:
    return {
        "point": run_row["point"],
        "status": run_row["status"],
        "cls_obs": run_row["cls_obs"],
        "cls_exp": median(run_row["cls_exp"]),
        "mu_up_obs": run_row["mu_up_obs"],
        "mu_up_exp": median(run_row["mu_up_exp"]),
        "excluded": run_row["excluded"],
        "error": run_row["error"].splitlines()[0] if run_row["error"] else "",
    }


def request_finished(request: Request) -> dict[str, Any]:
    rows = [short_result(run_summary(run)) for run in request_runs(request)]
    return {
        "request": request_document(request),
        "results": rows[:MAX_RESULTS],
        "results_omitted": max(0, len(rows) - MAX_RESULTS),
    }


def scan_halfway(request: Request) -> dict[str, Any]:
    return {"request": request_document(request)}


def validation_changed(validation: Validation, previous: str) -> dict[str, Any]:
    return {
        "analysis": validation.analysis.slug,
        "verdict": validation.verdict,
        "previous_verdict": previous,
        "message": validation.message,
        "platform_version": validation.platform_version,
        "finished_at": validation.finished_at.isoformat()
        if validation.finished_at
        else None,
        "url": api_url(f"analyses/{validation.analysis.slug}/"),
    }


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def result_line(row: dict[str, Any]) -> str:
    if row["status"] != "succeeded":
        return f"  {row['point']}: {row['status']} {row['error']}".rstrip()
    return (
        f"  {row['point']}: CLs obs {number(row['cls_obs'])}, "
        f"exp {number(row['cls_exp'])}; mu_up obs {number(row['mu_up_obs'])}, "
        f"exp {number(row['mu_up_exp'])}"
    )


def request_email(kind: str, payload: dict[str, Any]) -> tuple[str, str]:
    request = payload["request"]
    done = f"{request['finished_points']} of {request['points']} points"
    if kind == "scan.halfway":
        subject = f"recast: scan on {request['analysis']} is past half way ({done})"
        lines = [subject.removeprefix("recast: ") + ".", ""]
    else:
        # In the lifecycle's order: a jsonb payload does not keep key order.
        counts = ", ".join(
            f"{request['counts'][s]} {s}"
            for s in Status.values
            if s in request["counts"]
        )
        subject = f"recast: request on {request['analysis']} {request['status']}"
        lines = [f"Request {request['id']} {request['status']} ({counts}).", ""]
        lines += [result_line(row) for row in payload["results"]]
        if payload["results_omitted"]:
            lines.append(f"  … and {payload['results_omitted']} more points")
        lines.append("")
    lines += [
        f"Status:  {request['url']}",
        f"Results: {request['results_url']}?as=csv",
    ]
    if kind == "request.finished":
        lines.append(f"Archive: {request['archive_url']}")
    return subject, "\n".join(lines) + "\n"


def validation_email(payload: dict[str, Any]) -> tuple[str, str]:
    subject = (
        f"recast: reproducibility check of {payload['analysis']} now "
        f"{payload['verdict']}s (was {payload['previous_verdict']})"
    )
    text = (
        f"The reproducibility check of {payload['analysis']} changed verdict "
        f"from {payload['previous_verdict']} to {payload['verdict']} "
        f"(platform {payload['platform_version']}).\n\n"
        f"{payload['message']}\n\nAnalysis: {payload['url']}\n"
    )
    return subject, text


def email(kind: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain text of the e-mail for a notification."""
    if kind == "validation.changed":
        return validation_email(payload)
    return request_email(kind, payload)
