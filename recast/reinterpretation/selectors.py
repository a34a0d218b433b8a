"""Reads of requests and runs."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet

from recast.catalogue.models import Analysis
from recast.core.errors import NotFound
from recast.reinterpretation.inputs import patchset
from recast.reinterpretation.models import Request, Run, Status

# The prefix of the annotations ``counted`` adds (``runs_queued``, ...).
COUNTED = "runs_"


def request_get(request_id: str) -> Request:
    try:
        return Request.objects.select_related("analysis").get(id=request_id)
    except (Request.DoesNotExist, ValueError):
        raise NotFound(f"no request {request_id}") from None


def request_runs(request: Request) -> list[Run]:
    return list(request.runs.order_by("point"))


def parameter_order(analysis: Analysis) -> list[str]:
    """The model parameters' names as the analysis' patchset lists them (its
    ``labels``); PostgreSQL's jsonb keeps an object's keys in an order of its
    own, so the order a person expects comes from here."""
    if not analysis.patchset_sha256:
        return []
    labels = patchset(analysis.patchset_sha256).get("metadata", {}).get("labels")
    return [str(label) for label in labels or []]


def ordered_parameters(run: Run) -> dict[str, Any]:
    """The run's model parameters in the analysis' order, any others after."""
    order = parameter_order(run.request.analysis)
    given = run.model_parameters or {}
    names = [n for n in order if n in given] + sorted(set(given) - set(order))
    return {name: given[name] for name in names}


def parameter_names(runs: list[Run]) -> list[str]:
    """Every model parameter of ``runs``, in the analysis' order."""
    return list(dict.fromkeys(n for run in runs for n in ordered_parameters(run)))


def run_summary(run: Run) -> dict[str, Any]:
    """The numbers of one run, flat, as the CLI and exports show them."""
    result = run.result or {}
    fit = result.get("fit", {})
    return {
        "run": str(run.id),
        "point": run.point,
        "status": run.status,
        "model_parameters": ordered_parameters(run),
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


def request_list(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Request]:
    """The requests ``user`` may see: their own, or every request for staff."""
    requests = Request.objects.select_related("analysis").order_by(
        "-submitted_at", "id"
    )
    if getattr(user, "is_staff", False):
        return requests
    return (
        requests.filter(owner_id=user.pk) if user.is_authenticated else requests.none()
    )


def request_for(user: AbstractBaseUser | AnonymousUser, request_id: str) -> Request:
    """One request of ``user``'s; someone else's is reported as missing."""
    try:
        return request_list(user).get(id=request_id)
    except (Request.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"no request {request_id} of yours") from None


def run_for(user: AbstractBaseUser | AnonymousUser, run_id: str) -> Run:
    try:
        return Run.objects.select_related("request").get(
            id=run_id, request__in=request_list(user)
        )
    except (Run.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"no run {run_id} of yours") from None


def counted(requests: QuerySet[Request]) -> QuerySet[Request]:
    """``requests`` with their runs counted by status in the same query (one
    query for a page of requests instead of one more per request)."""
    return requests.annotate(
        **{
            f"{COUNTED}{status}": Count("runs", filter=Q(runs__status=status))
            for status in Status.values
        }
    )


def request_list_counted(
    user: AbstractBaseUser | AnonymousUser,
) -> QuerySet[Request]:
    """``request_list`` with each request's runs counted by status."""
    return counted(request_list(user))


def request_detail_for(
    user: AbstractBaseUser | AnonymousUser, request_id: str
) -> Request:
    """``request_for`` with its workflow version in the same query."""
    try:
        return request_list(user).select_related("workflow_version").get(id=request_id)
    except (Request.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"no request {request_id} of yours") from None


def counts_of(runs: list[Run]) -> dict[str, int]:
    """Runs by status, counted from rows already read."""
    counts = dict.fromkeys(Status.values, 0)
    for run in runs:
        counts[run.status] += 1
    return counts


def status_counts(request: Request) -> dict[str, int]:
    """The request's runs by status: as ``counted`` annotated them, else
    counted now."""
    if hasattr(request, f"{COUNTED}{Status.QUEUED}"):
        return {s: int(getattr(request, f"{COUNTED}{s}")) for s in Status.values}
    rows = request.runs.values("status").annotate(n=Count("id"))
    counts = {status: 0 for status in Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


CSV_RESULT_COLUMNS = ["cls_obs", "cls_exp", "mu_up_obs", "mu_up_exp"]
SIGMA_NAMES = ["m2", "m1", "0", "p1", "p2"]


def results_csv_rows(runs: list[Run]) -> tuple[list[str], list[list[Any]]]:
    """A header and one row per run: model parameters, then the numbers flat."""
    labels = parameter_names(runs)
    header = ["point", "status", *labels, "cls_obs"]
    header += [f"cls_exp_{s}" for s in SIGMA_NAMES] + ["mu_up_obs"]
    header += [f"mu_up_exp_{s}" for s in SIGMA_NAMES] + ["fit_status", "error"]
    rows = []
    for run in runs:
        summary = run_summary(run)
        row = [
            run.point,
            run.status,
            *(run.model_parameters.get(k, "") for k in labels),
        ]
        row += [
            summary["cls_obs"],
            *(summary["cls_exp"] or [None] * 5),
            summary["mu_up_obs"],
        ]
        row += [*(summary["mu_up_exp"] or [None] * 5), summary["fit_status"], run.error]
        rows.append(["" if v is None else v for v in row])
    return header, rows


def results_csv(runs: list[Run]) -> str:
    header, rows = results_csv_rows(runs)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()
