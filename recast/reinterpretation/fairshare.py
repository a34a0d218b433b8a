"""Which waiting points run next: a fair share of the workers for every user.

Workers pull. What the queue holds is not "run these points" but "run the
next fair batch"; the worker that executes such a pull chooses, at that
moment and in the database:

1. the owner with the fewest running points, among the owners with points
   waiting and below their running limit (a tie goes to the owner whose
   oldest waiting point was submitted first);
2. that owner's oldest request with points waiting;
3. that request's first waiting points, in point order, as many as the batch
   size allows (see ``size_now``).

Waiting points are queued ones, and running ones whose worker has been silent
past its lease (it died): a claim takes those over as a new attempt.

Each claim is a conditional update of one run, so a run is never taken
twice. On PostgreSQL the choice and the claims happen in one transaction that
first locks the owner's user row (two claims of one owner cannot both pass
the running limit) and then the chosen runs with SELECT ... FOR UPDATE SKIP
LOCKED. SQLite has no row locks; its claims stay safe through the
conditional updates alone.

Claims go one at a time (``claims_serialised``): the ranking counts the
points each owner has running, and that count must include every claim made
before it. Two workers whose batches end together would otherwise both rank
from the same counts and both serve the owner ahead, while the other owner,
with nothing running, waits a round more. A claim takes milliseconds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q, QuerySet
from django.utils import timezone

from recast.quotas.models import Deferral
from recast.quotas.selectors import limits_for
from recast.quotas.services import owner_lock
from recast.reinterpretation import services
from recast.reinterpretation.models import Request, Run, Status

logger = logging.getLogger(__name__)
# Far more than any batch: the room left under no running limit.
UNLIMITED = 1 << 30


# The advisory lock every claim holds on PostgreSQL (any constant the platform
# uses for nothing else); in one process, a lock for SQLite's threads.
CLAIM_LOCK = 0x7265636173
claim_thread_lock = threading.Lock()


def claims_serialised() -> None:
    """Wait, inside the claim's transaction, until no other claim is being
    made; PostgreSQL releases the lock when the transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK])


@dataclass(frozen=True)
class Turn:
    """An owner with points waiting, as the chooser ranks them; ``owner_id``
    None stands for the runs nobody owns (the CLI, reproducibility checks)."""

    owner_id: int | None
    running: int
    first_waiting: datetime

    def key(self) -> tuple[int, datetime, int]:
        return (self.running, self.first_waiting, self.owner_id or 0)


def takeable(now: datetime) -> Q:
    """Runs a claim may take: queued, or running but silent past the lease."""
    stale = now - timedelta(seconds=settings.RECAST_RUN_LEASE)
    return Q(status=Status.QUEUED) | Q(status=Status.RUNNING, heartbeat_at__lt=stale)


def waiting_runs(now: datetime, among: list[str] | None) -> QuerySet[Run]:
    runs = Run.objects.filter(takeable(now))
    return runs if among is None else runs.filter(id__in=among)


def running_by_owner() -> dict[int | None, int]:
    rows = (
        Run.objects.filter(status=Status.RUNNING)
        .order_by()
        .values("request__owner")
        .annotate(n=Count("id"))
    )
    return {row["request__owner"]: row["n"] for row in rows}


def turns(waiting: QuerySet[Run]) -> list[Turn]:
    """The owners with points in ``waiting``, in the order they are served."""
    rows = (
        waiting.order_by().values("request__owner").annotate(first=Min("submitted_at"))
    )
    running = running_by_owner()
    ranked = [
        Turn(row["request__owner"], running.get(row["request__owner"], 0), row["first"])
        for row in rows
    ]
    return sorted(ranked, key=Turn.key)


def room_for(owner_id: int | None) -> int:
    """How many more points the owner may start now. On PostgreSQL this
    locks the owner's row until the claim commits, so that the count and the
    claims that follow it are one step for every other claimer."""
    if owner_id is None:
        return UNLIMITED
    owner = owner_lock(owner_id)
    limit = limits_for(owner).max_running
    if not limit:
        return UNLIMITED
    running = Run.objects.filter(request__owner=owner, status=Status.RUNNING).count()
    return max(0, limit - running)


def size_now(request: Request, points: int, shared: bool, room: int) -> int:
    """Points in the batch claimed now: as ``dispatch.points_per_batch`` cuts
    a request of ``points`` points (one for a workflow that declares no
    batch; else enough batches to keep every slot busy, at most the
    workflow's ``max_points`` and RECAST_BATCH_MAX), at most
    RECAST_BATCH_MAX_SHARED as well when another owner has points waiting (so
    that they wait one small batch, not a long one); never past the owner's
    running limit (``room``, at least one)."""
    from recast.reinterpretation.dispatch import points_per_batch

    size = points_per_batch(points, request.workflow_version.batch or {})
    if shared:
        size = min(size, settings.RECAST_BATCH_MAX_SHARED)
    return min(size, room)


def owner_defer(mine: QuerySet[Run]) -> None:
    """Mark the first waiting run of an owner at their running limit, so that
    the end of one of their points, or the sweeper once a cancellation or a
    raised limit makes room, hands out a pull for them (see
    recast.quotas.services.owner_release)."""
    first = mine.filter(status=Status.QUEUED).order_by("submitted_at", "point").first()
    if first is not None:
        Deferral.objects.get_or_create(run=first)


def runs_take(run_ids: list[str], now: datetime, backend: str) -> list[str]:
    """Move each run from waiting to running, as a new attempt; return those
    this call took (a run another claimer took first is left to it)."""
    taken = []
    for run_id in run_ids:
        moved = Run.objects.filter(takeable(now), id=run_id).update(
            status=Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            backend=backend,
        )
        if moved:
            taken.append(run_id)
    return taken


def owner_claim(
    turn: Turn, waiting: QuerySet[Run], shared: bool, backend: str
) -> list[str]:
    """Claim the next batch of ``turn``'s owner; [] when they have no room
    or another claimer took what they had."""
    # None matches the runs nobody owns (Django reads it as IS NULL).
    mine = waiting.filter(request__owner=turn.owner_id)
    room = room_for(turn.owner_id)
    if room <= 0:
        owner_defer(mine)
        return []
    oldest = mine.order_by("request__submitted_at", "request_id").first()
    if oldest is None:
        return []
    request = Request.objects.select_related("workflow_version").get(
        id=oldest.request_id
    )
    points = mine.filter(request=request)
    # Sized from the whole scan, as ``dispatch.batch_plan`` plans it: sizing
    # from what still waits made every claim smaller than the one before, and
    # a scan's tail ran as batches of one point, each paying the step
    # processes' start and the fit step's compile (19 batches for 125 points).
    scan = Run.objects.filter(request=request).count()
    size = size_now(request, scan, shared, room)
    # Rows another pull is claiming right now are skipped, not waited for.
    locked = points.order_by("point").select_for_update(skip_locked=True, of=("self",))
    run_ids = [str(i) for i in locked.values_list("id", flat=True)[:size]]
    return runs_take(run_ids, timezone.now(), backend)


def batch_claim(backend: str, among: list[str] | None = None) -> list[str]:
    """Choose and claim the next fair batch (restricted to ``among`` when
    given); returns the claimed run ids in point order, [] when nothing
    waits that may start now."""
    with claim_thread_lock, transaction.atomic():
        claims_serialised()
        waiting = waiting_runs(timezone.now(), among)
        ranked = turns(waiting)
        for turn in ranked:
            shared = len(ranked) > 1
            claimed = owner_claim(turn, waiting, shared, backend)
            if claimed:
                break
        else:
            return []
    services.request_refresh(
        Run.objects.values_list("request_id", flat=True).get(id=claimed[0])
    )
    logger.info(
        "claimed %d point(s) for owner %s (%d owner(s) waiting)",
        len(claimed),
        turn.owner_id,
        len(ranked),
    )
    return claimed
