"""Where the reinterpretation app tells notifications what happened. Each hook
runs after the commit of the change it reports, and never raises: a failure
to notify is logged and must not fail the run that finished."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User

from recast.notifications import messages
from recast.notifications.models import Follow, Kind
from recast.notifications.services import notify
from recast.reinterpretation.models import FINISHED, Request, Validation

logger = logging.getLogger(__name__)


def request_finished(request_id: Any) -> None:
    try:
        request = Request.objects.select_related("analysis", "owner").get(id=request_id)
        if request.owner is None or request.status not in FINISHED:
            return
        payload = messages.request_finished(request)
        notify([request.owner], Kind.REQUEST_FINISHED, str(request.id), payload)
    except Exception:
        logger.exception("request %s: its end could not be notified", request_id)


def request_progressed(request_id: Any) -> None:
    """Tell a scan's owner once more than half of its points have finished
    (the end itself is told by request_finished)."""
    try:
        request = Request.objects.select_related("analysis", "owner").get(id=request_id)
        if request.owner is None or not request.is_scan:
            return
        total = request.runs.count()
        finished = request.runs.filter(status__in=FINISHED).count()
        if finished * 2 < total or finished == total:
            return
        payload = messages.scan_halfway(request)
        notify([request.owner], Kind.SCAN_HALFWAY, str(request.id), payload)
    except Exception:
        logger.exception("request %s: its progress could not be notified", request_id)


def previous_verdict(validation: Validation) -> str:
    earlier = (
        Validation.objects.filter(
            analysis_id=validation.analysis_id, finished_at__isnull=False
        )
        .exclude(pk=validation.pk)
        .exclude(verdict=Validation.Verdict.PENDING)
        .order_by("-finished_at", "-pk")
        .first()
    )
    return earlier.verdict if earlier else ""


def validation_concluded(validation_id: int) -> None:
    """Tell the analysis' followers when its check changed verdict (the first
    verdict of an analysis is no change)."""
    try:
        validation = Validation.objects.select_related("analysis").get(pk=validation_id)
        previous = previous_verdict(validation)
        if not previous or previous == validation.verdict:
            return
        followers = list(
            User.objects.filter(
                id__in=Follow.objects.filter(analysis_id=validation.analysis_id).values(
                    "user_id"
                )
            )
        )
        payload = messages.validation_changed(validation, previous)
        notify(followers, Kind.VALIDATION_CHANGED, str(validation.pk), payload)
    except Exception:
        logger.exception(
            "validation %s: its verdict could not be notified", validation_id
        )
