"""The reproducibility gate: re-run an analysis' example inputs and compare each
quantity with its reference result, within the analysis' tolerance."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

import recast
from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput
from recast.core.results import compare
from recast.notifications import hooks as notify
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Validation
from recast.reinterpretation.services import request_submit

logger = logging.getLogger(__name__)


def validation_start(analysis: Analysis, enqueue_runs: bool = True) -> Validation:
    """Submit the analysis' example as a request whose end gives the verdict."""
    if not analysis.reference_result:
        raise InvalidInput(
            f"analysis '{analysis.slug}' declares no reference result to compare with"
        )
    if not analysis.example_inputs:
        raise InvalidInput(
            f"analysis '{analysis.slug}' has no example inputs to re-run"
        )
    point = check_point(
        analysis,
        analysis.example_inputs,
        name=analysis.reference_result.get("point", ""),
    )
    with transaction.atomic():
        request = request_submit(analysis, [point], enqueue_runs=enqueue_runs)
        return Validation.objects.create(
            analysis=analysis, request=request, platform_version=recast.__version__
        )


def number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) else str(value)


def deviation_text(row: dict[str, Any]) -> str:
    expected, obtained = number(row["expected"]), number(row["obtained"])
    return f"{row['quantity']}: expected {expected}, obtained {obtained}"


def validation_conclude(request_id: Any) -> None:
    """Give the verdict of the validation a finished request belongs to."""
    validation = (
        Validation.objects.filter(request_id=request_id)
        .select_related("analysis")
        .first()
    )
    if validation is None or validation.verdict != Validation.Verdict.PENDING:
        return
    analysis = validation.analysis
    run = Request.objects.get(id=request_id).runs.get()
    if run.result is None:
        verdict, rows, message = (
            Validation.Verdict.FAIL,
            [],
            f"the example did not run: {run.error or run.status}",
        )
    else:
        rows = compare(
            analysis.reference_result, run.result, analysis.reference_tolerance
        )
        failing = [r for r in rows if not r["ok"]]
        verdict = Validation.Verdict.FAIL if failing else Validation.Verdict.PASS
        message = "; ".join(map(deviation_text, failing))
        message = message or "every quantity within the tolerance"
    moved = Validation.objects.filter(
        pk=validation.pk, verdict=Validation.Verdict.PENDING
    ).update(
        verdict=verdict, deviations=rows, message=message, finished_at=timezone.now()
    )
    if moved:
        transaction.on_commit(partial(notify.validation_concluded, validation.pk))
    logger.info("validation of %s: %s (%s)", analysis.slug, verdict, message)
