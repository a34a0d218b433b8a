"""Writes and state transitions of requests and runs.

Runs move between states only by conditional updates (``filter(status=old)
.update(status=new)``) whose row count is checked, so two workers can never
both start, or both finish, the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.core.errors import Conflict, InvalidInput
from recast.engine.events import StepEvent
from recast.notifications import hooks as notify
from recast.quotas import services as quotas
from recast.reinterpretation.dispatch import batches_of
from recast.reinterpretation.inputs import PointInputs
from recast.reinterpretation.models import FINISHED, Request, Run, Status, Step
from recast.storage.services import blob_store

logger = logging.getLogger(__name__)


def enqueue(run_ids: list[str], batches: int | None = None) -> None:
    from recast.reinterpretation.dispatch import dispatch

    dispatch(run_ids, batches)


def request_submit(
    analysis: Analysis,
    points: Sequence[PointInputs],
    owner: User | None = None,
    *,
    enqueue_runs: bool = True,
    use_cache: bool = True,
    idempotency_key: str = "",
    fingerprint: str = "",
) -> Request:
    """Create a request with one run per checked point, then queue the runs once
    the transaction has committed (a worker must find the rows it is given).
    With ``use_cache`` off, its runs neither read nor fill the step cache.

    Raises IntegrityError when ``owner`` already has a request with
    ``idempotency_key`` (see recast.reinterpretation.idempotency)."""
    if not points:
        raise InvalidInput("a request needs at least one point")
    names = [p.point for p in points]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(
            f"point names must be unique within a request: {', '.join(duplicates)}"
        )

    # No savepoint of its own: a submit from the API already holds its
    # owner's transaction (two statements more for each submit), and no
    # caller goes on with a transaction once this has failed in it.
    with transaction.atomic(savepoint=False):
        request = Request.objects.create(
            analysis=analysis,
            workflow_version=analysis.current_workflow(),
            owner=owner,
            is_scan=len(points) > 1,
            use_cache=use_cache,
            status=Status.QUEUED,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
        for point in points:
            for content in point.new_files.values():
                blob_store(content)
        now = timezone.now()
        runs = Run.objects.bulk_create(
            Run(
                request=request,
                point=p.point,
                model_parameters=p.model_parameters,
                inputs=p.inputs,
                status=Status.QUEUED,
                queued_at=now,
            )
            for p in points
        )
        run_ids = [str(run.id) for run in runs]
        if enqueue_runs:
            # Planned here from what the request knows, rather than read back
            # from the runs' rows by the dispatcher (a query on each submit).
            batches = batches_of(len(runs), request.workflow_version.batch or {})
            transaction.on_commit(lambda: enqueue(run_ids, batches))
    logger.info(
        "request %s submitted: %s, %d point(s)", request.id, analysis.slug, len(points)
    )
    return request


def run_start(run_id: str, backend: str) -> int | None:
    """Move a queued run to running, or take over a running one whose worker
    stopped beating (it died); return the new attempt number. None when
    another live worker has it or it has finished: the task then does nothing."""
    if not quotas.run_claim_allowed(run_id):
        return None  # its owner is at their running limit; released later
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RECAST_RUN_LEASE)
    takeable = Q(status=Status.QUEUED) | Q(
        status=Status.RUNNING, heartbeat_at__lt=stale
    )
    moved = Run.objects.filter(takeable, id=run_id).update(
        status=Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        backend=backend,
    )
    if not moved:
        return None
    request_refresh(Run.objects.get(id=run_id).request_id)
    return int(Run.objects.values_list("attempts", flat=True).get(id=run_id))


def step_record(run_id: str, attempt: int, event: StepEvent) -> None:
    status = {
        "started": Status.RUNNING,
        "finished": Status.SUCCEEDED,
        "failed": Status.FAILED,
    }[event.kind]
    fields: dict[str, Any] = {
        "status": status,
        "image": event.image,
        "command": event.command,
        "log_path": event.log_path,
        "exit_code": event.exit_code,
        "reason": event.reason,
        # The step cache: the key, and where reused outputs came from.
        "cache_key": event.cache.get("key", ""),
        "reused": bool(event.cache.get("hit")),
        "reused_from": event.cache.get("producer", ""),
    }
    if event.kind == "started":
        fields["started_at"] = timezone.now()
    else:
        fields["finished_at"] = timezone.now()
    step_write(run_id, attempt, event.name, fields)
    quotas.usage_record(run_id, attempt, event)
    logger.info(
        "run %s step %s %s%s",
        run_id,
        event.name,
        "reused from the cache" if fields["reused"] else event.kind,
        f": {event.reason}" if event.reason else "",
    )


def step_write(run_id: str, attempt: int, name: str, fields: dict[str, Any]) -> None:
    """Update the step's row, or create it: one statement when the row is
    there (a step's end), where update_or_create takes a transaction, a
    locking read and a write for every event."""
    rows = Step.objects.filter(run_id=run_id, attempt=attempt, name=name)
    if rows.update(**fields):
        return
    try:
        with transaction.atomic():
            Step.objects.create(run_id=run_id, attempt=attempt, name=name, **fields)
    except IntegrityError:
        rows.update(**fields)  # written meanwhile by another event of the step


def run_heartbeat(run_id: str, attempt: int) -> bool:
    """Renew the run's lease; False when this attempt no longer holds the run
    (cancelled, or taken over by another worker after a silence)."""
    return bool(
        Run.objects.filter(id=run_id, status=Status.RUNNING, attempts=attempt).update(
            heartbeat_at=timezone.now()
        )
    )


def runs_heartbeat(held: dict[str, int]) -> set[str]:
    """Renew the leases of several runs, each held by its attempt; return the
    runs still held (a cancelled or taken-over one is not)."""
    now = timezone.now()
    for attempt in set(held.values()):
        ids = [run_id for run_id, a in held.items() if a == attempt]
        Run.objects.filter(id__in=ids, status=Status.RUNNING, attempts=attempt).update(
            heartbeat_at=now
        )
    rows = Run.objects.filter(id__in=list(held), status=Status.RUNNING)
    return {
        str(run_id)
        for run_id, attempts in rows.values_list("id", "attempts")
        if held[str(run_id)] == attempts
    }


def run_finish(run_id: str, attempt: int, **fields: Any) -> bool:
    """End a run held by ``attempt``; False (and nothing written) otherwise."""
    moved = Run.objects.filter(
        id=run_id, status=Status.RUNNING, attempts=attempt
    ).update(finished_at=timezone.now(), **fields)
    if moved:
        request_id = Run.objects.get(id=run_id).request_id
        if request_refresh(request_id):
            request_finished(request_id)
        transaction.on_commit(partial(notify.request_progressed, request_id))
        transaction.on_commit(partial(quotas.runs_release, request_id))
    return bool(moved)


def request_finished(request_id: Any) -> None:
    """What follows a request's end: its archive (a failure is logged, since
    every point's own archive and result are already recorded), and the
    verdict when the request was a reproducibility check."""
    from recast.reinterpretation.scan_archive import request_archive
    from recast.reinterpretation.validation import validation_conclude

    try:
        request_archive(request_id)
    except Exception:
        logger.exception(
            "request %s: the scan archive could not be written", request_id
        )
    validation_conclude(request_id)
    transaction.on_commit(partial(notify.request_finished, request_id))


def run_succeed(
    run_id: str,
    attempt: int,
    result: dict[str, Any],
    archive_path: str,
    archive_sha256: str,
) -> None:
    """Record the result, once, and only by the attempt that holds the run."""
    recorded = run_finish(
        run_id,
        attempt,
        status=Status.SUCCEEDED,
        result=result,
        archive_path=archive_path,
        archive_sha256=archive_sha256,
    )
    if not recorded:
        raise Conflict(
            f"run {run_id} attempt {attempt} no longer holds the run; "
            "its result was not recorded"
        )


def run_fail(
    run_id: str,
    attempt: int,
    reason: str,
    step: str = "",
    archive_path: str = "",
    result: dict[str, Any] | None = None,
) -> None:
    """Record a failure; ``result`` keeps a flagged result (a failed fit)."""
    run_finish(
        run_id,
        attempt,
        status=Status.FAILED,
        error=reason,
        failed_step=step,
        archive_path=archive_path,
        result=result,
    )


def request_cancel(request: Request) -> int:
    """Cancel every unfinished run of ``request``; a running step is stopped by
    its worker, which checks for cancellation while it waits. Returns how many
    runs were cancelled."""
    if request.status in FINISHED:
        raise Conflict(f"request {request.id} has already {request.status}")
    moved = Run.objects.filter(
        request=request, status__in=[Status.SUBMITTED, Status.QUEUED, Status.RUNNING]
    ).update(
        status=Status.CANCELLED,
        finished_at=timezone.now(),
        error="cancelled on request",
    )
    if request_refresh(request.id):
        request_finished(request.id)
    logger.info("request %s: %d run(s) cancelled", request.id, moved)
    return moved


def run_mark_cancelled(run_id: str) -> None:
    moved = Run.objects.filter(
        id=run_id, status__in=[Status.QUEUED, Status.RUNNING]
    ).update(
        status=Status.CANCELLED,
        finished_at=timezone.now(),
        error="cancelled on request",
    )
    if moved:
        request_refresh(Run.objects.get(id=run_id).request_id)


def derived_status(counts: dict[str, int]) -> str:
    """Running while any point is unfinished; then succeeded if every point
    did, failed if any failed, else cancelled (some were stopped on request)."""
    total = sum(counts.values())
    finished = sum(counts.get(s, 0) for s in FINISHED)
    if finished < total:
        started = counts.get(Status.RUNNING, 0) + finished
        return Status.RUNNING if started else Status.QUEUED
    if counts.get(Status.SUCCEEDED, 0) == total:
        return Status.SUCCEEDED
    if counts.get(Status.FAILED, 0):
        return Status.FAILED
    return Status.CANCELLED


def request_refresh(request_id: Any) -> bool:
    """Derive a request's status from its runs'; True when this call is the
    one that finished the request (a conditional update: only one caller is)."""
    rows = (
        Run.objects.filter(request_id=request_id)
        .values("status")
        .annotate(n=Count("id"))
    )
    status = derived_status({row["status"]: row["n"] for row in rows})
    finished_at = timezone.now() if status in FINISHED else None
    moved = (
        Request.objects.filter(id=request_id)
        .exclude(status=status)
        .update(status=status, finished_at=finished_at)
    )
    return bool(moved) and status in FINISHED


def runs_interrupted_requeue() -> int:
    """In-process mode, before a server's processes start: every running run
    was interrupted with the previous server (no other process could hold
    it), so it goes back to queued and starts over. Returns how many."""
    moved = Run.objects.filter(status=Status.RUNNING).update(status=Status.QUEUED)
    if moved:
        logger.info(
            "%d run(s) interrupted with the previous server queued again", moved
        )
    return moved


def runs_resumable() -> list[str]:
    """Runs that no live process holds: queued ones, and running ones whose
    process went silent past the lease (one that died)."""
    silent = Q(
        status=Status.RUNNING,
        heartbeat_at__lt=timezone.now() - timedelta(seconds=settings.RECAST_RUN_LEASE),
    )
    found = Run.objects.filter(Q(status=Status.QUEUED) | silent)
    return [str(i) for i in found.values_list("id", flat=True)]


def runs_requeue_stale() -> list[str]:
    """Hand again to the workers the runs whose pull may have been lost:
    running ones whose worker went silent (past the lease), and queued ones
    waiting longer than RECAST_REQUEUE_AFTER while no worker has claimed
    anything for as long (a broker that lost its messages). A queued point may
    wait its turn for hours behind other users' points: while workers claim,
    their pulls hand out the next ones, and more would pile up in the broker.
    Claims are conditional, so a run handed out twice still runs once."""
    now = timezone.now()
    silent = Q(
        status=Status.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=settings.RECAST_RUN_LEASE),
    )
    since = now - timedelta(seconds=settings.RECAST_REQUEUE_AFTER)
    waiting = Q(status=Status.QUEUED, queued_at__lt=since)
    if Run.objects.filter(started_at__gte=since).exists():
        waiting = Q(pk__in=[])
    run_ids = [
        str(i)
        for i in Run.objects.filter(silent | waiting).values_list("id", flat=True)
    ]
    if run_ids:
        logger.warning("handing %d stale run(s) to the workers again", len(run_ids))
        enqueue(run_ids)
    return run_ids
