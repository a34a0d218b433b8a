"""Reads of limits and usage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q, Sum
from django.utils import timezone

from recast.quotas.models import CpuUsage, Quota
from recast.reinterpretation.models import Run, Status

LIMITS = ("max_running", "max_queued", "cpu_seconds_month")
WAITING = (Status.SUBMITTED, Status.QUEUED)


@dataclass
class Limits:
    """A user's effective limits; 0 means no limit."""

    max_running: int
    max_queued: int
    cpu_seconds_month: int

    def as_dict(self) -> dict[str, int | None]:
        return {name: value or None for name, value in asdict(self).items()}


def defaults() -> dict[str, int]:
    return {
        "max_running": settings.RECAST_QUOTA_RUNNING,
        "max_queued": settings.RECAST_QUOTA_QUEUED,
        "cpu_seconds_month": settings.RECAST_QUOTA_CPU_SECONDS,
    }


def most_generous(values: list[int]) -> int:
    return 0 if 0 in values else max(values)


def limits_for(user: User) -> Limits:
    """Each limit from the user's own quota if set there, else the most
    generous of their groups' quotas, else the settings' default."""
    # One query for both (a submit reads them): the user's row and their
    # groups' rows, told apart by which owner each has.
    rows = list(Quota.objects.filter(Q(user=user) | Q(group__in=user.groups.all())))
    own = next((q for q in rows if q.user_id == user.pk), None)
    groups = [q for q in rows if q.user_id is None]
    effective = defaults()
    for name in LIMITS:
        from_groups = [getattr(q, name) for q in groups if getattr(q, name) is not None]
        if own is not None and getattr(own, name) is not None:
            effective[name] = getattr(own, name)
        elif from_groups:
            effective[name] = most_generous(from_groups)
    return Limits(**effective)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cpu_seconds_this_month(user: User) -> float:
    used = CpuUsage.objects.filter(
        run__request__owner=user, recorded_at__gte=month_start()
    ).aggregate(total=Sum("cpu_seconds"))["total"]
    return float(used or 0.0)


def points_count(user: User, statuses: tuple[str, ...]) -> int:
    return Run.objects.filter(request__owner=user, status__in=statuses).count()


def usage_for(user: User) -> dict[str, Any]:
    """What the user uses now against their limits (null: no limit)."""
    return {
        "user": user.username,
        "month": month_start().strftime("%Y-%m"),
        "running": points_count(user, (Status.RUNNING,)),
        "queued": points_count(user, WAITING),
        "cpu_seconds": round(cpu_seconds_this_month(user), 3),
        "limits": limits_for(user).as_dict(),
    }
