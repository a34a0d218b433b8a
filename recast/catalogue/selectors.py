"""Reads of the catalogue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from recast.catalogue.models import Analysis
from recast.core.errors import NotFound


def analysis_list(
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> QuerySet[Analysis]:
    """Analyses ``user`` may see: public ones, their team's, or all for staff.
    Without a user (the local commands) every analysis is listed."""
    analyses = Analysis.objects.order_by("slug")
    if user is None or getattr(user, "is_staff", False):
        return analyses
    if not user.is_authenticated:
        return analyses.filter(is_public=True)
    return analyses.filter(Q(is_public=True) | Q(team__user=user)).distinct()


def analysis_get(
    slug: str, user: AbstractBaseUser | AnonymousUser | None = None
) -> Analysis:
    """The analysis ``slug``; one the user may not see is reported as missing."""
    try:
        return analysis_list(user).get(slug=slug)
    except Analysis.DoesNotExist:
        raise NotFound(
            f"no analysis '{slug}' in the catalogue (see `recast catalogue ls`)"
        ) from None
