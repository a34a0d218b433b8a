"""Writes of quotas, and the checks that keep users within them: at submit
(queued points, CPU budget), and when a worker claims a run (running points).

A check counts, then acts: both happen while the user's row is locked
(``owner_lock``, PostgreSQL; SQLite runs one write transaction at a time), so
two submits, or two claims, of one user at the same instant go one after the
other and the second counts what the first added. Only the claim of given runs
(``run_claim_allowed``: ``recast run`` and tasks queued by earlier versions)
still counts without the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from recast.core.errors import InvalidInput, QuotaExceeded
from recast.engine.events import StepEvent
from recast.quotas.models import CpuUsage, Deferral, Quota
from recast.quotas.selectors import (
    LIMITS,
    WAITING,
    cpu_seconds_this_month,
    limits_for,
    points_count,
)
from recast.reinterpretation.models import Request, Run, Status

logger = logging.getLogger(__name__)


def owner_key(owner: User | Group) -> dict[str, Any]:
    return {"user": owner} if isinstance(owner, User) else {"group": owner}


def quota_set(
    owner: User | Group, limits: dict[str, Any], *, replace: bool = False
) -> Quota:
    """Set some limits of a user or group (None: inherit); with ``replace``,
    the limits not given are reset to inherit."""
    for name, value in limits.items():
        if name not in LIMITS:
            raise InvalidInput(f"$.{name}: not a limit (one of {', '.join(LIMITS)})")
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidInput(
                f"$.{name}: must be a whole number >= 0 (0: no limit) or null"
            )
    quota, _ = Quota.objects.get_or_create(**owner_key(owner))
    for name in LIMITS:
        if name in limits or replace:
            setattr(quota, name, limits.get(name))
    quota.save()
    logger.info("quota of %s set: %s", owner, limits)
    return quota


def quota_clear(owner: User | Group) -> None:
    Quota.objects.filter(**owner_key(owner)).delete()


def owner_lock(owner_id: int) -> User:
    """The user, their row locked until the transaction ends: every other
    submit or claim of theirs waits for it there. Call inside a transaction."""
    return User.objects.select_for_update().get(pk=owner_id)


@contextmanager
def owner_serialised(owner: User | None) -> Iterator[None]:
    """A transaction that holds ``owner``'s lock (see ``owner_lock``): their
    quota checks and the request written after them are one step."""
    with transaction.atomic():
        if owner is not None:
            owner_lock(owner.pk)
        yield


def submit_check(owner: User, points: int) -> None:
    """Refuse a request of ``points`` points that would take ``owner`` beyond
    their queued-points limit or that comes once their CPU budget is spent."""
    limits = limits_for(owner)
    if limits.max_queued:
        queued = points_count(owner, WAITING)
        if queued + points > limits.max_queued:
            raise QuotaExceeded(
                f"this request has {points} points; your limit on queued points "
                f"is {limits.max_queued} and {queued} are queued"
            )
    if limits.cpu_seconds_month:
        used = cpu_seconds_this_month(owner)
        if used >= limits.cpu_seconds_month:
            raise QuotaExceeded(
                f"your monthly CPU-time budget is {limits.cpu_seconds_month} s "
                f"and {used:.0f} s are used this month"
            )


def usage_record(run_id: str, attempt: int, event: StepEvent) -> None:
    """Keep the CPU time of a step that ended (executors that cannot measure
    it report none)."""
    if event.kind == "started" or event.cpu_seconds is None:
        return
    CpuUsage.objects.update_or_create(
        run_id=run_id,
        attempt=attempt,
        step=event.name,
        defaults={"cpu_seconds": event.cpu_seconds},
    )


def run_claim_allowed(run_id: str) -> bool:
    """False, and the run left queued (with a deferral that brings it back),
    when its owner already runs as many points as their limit allows."""
    row = (
        Run.objects.filter(id=run_id, status=Status.QUEUED)
        .values("request__owner")
        .first()
    )
    if row is None or row["request__owner"] is None:
        return True  # not queued (the claim decides) or nobody's
    owner = User.objects.get(pk=row["request__owner"])
    limit = limits_for(owner).max_running
    if not limit or points_count(owner, (Status.RUNNING,)) < limit:
        return True
    Deferral.objects.get_or_create(run_id=run_id)
    logger.info("run %s waits: %s runs %d point(s), the limit", run_id, owner, limit)
    return False


def owner_release(owner: User) -> list[str]:
    """Hand out again as many of the owner's deferred runs as they have free
    running slots, oldest first. Handing one out twice is harmless: the claim
    is conditional and checks the limit again."""
    Deferral.objects.filter(run__request__owner=owner).exclude(
        run__status=Status.QUEUED
    ).delete()
    deferred = Deferral.objects.filter(run__request__owner=owner)
    limit = limits_for(owner).max_running
    if limit:
        free = max(0, limit - points_count(owner, (Status.RUNNING,)))
        deferred = deferred[:free]
    run_ids = [str(i) for i in deferred.values_list("run_id", flat=True)]
    if not run_ids:
        return []
    Deferral.objects.filter(run_id__in=run_ids).delete()
    from recast.reinterpretation.dispatch import dispatch

    dispatch(run_ids)
    return run_ids


def runs_release(request_id: Any) -> list[str]:
    """After a run of the request ended: its owner has a free slot."""
    try:
        owner = Request.objects.get(id=request_id).owner
        return owner_release(owner) if owner is not None else []
    except Exception:
        logger.exception("request %s: waiting runs could not be released", request_id)
        return []


def runs_release_all() -> list[str]:
    """The sweeper's part: release every owner's deferred runs that fit (a
    slot freed by a cancellation, or a release that was lost)."""
    owners = User.objects.filter(
        id__in=Deferral.objects.values("run__request__owner")
    ).distinct()
    return [run_id for owner in owners for run_id in owner_release(owner)]
