"""Reads of the catalogue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput, NotFound


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


def analysis_search(
    user: AbstractBaseUser | AnonymousUser | None,
    search: str = "",
    collaboration: str = "",
    keyword: str = "",
    inspire: str | None = None,
    hepdata_doi: str = "",
) -> QuerySet[Analysis]:
    """The analyses ``user`` may see, narrowed by words in the title, abstract
    or slug, a collaboration, a keyword, an INSPIRE record or a HEPData DOI."""
    analyses = analysis_list(user)
    if search:
        analyses = analyses.filter(
            Q(title__icontains=search)
            | Q(abstract__icontains=search)
            | Q(slug__icontains=search)
        )
    if collaboration:
        analyses = analyses.filter(collaboration__iexact=collaboration)
    if keyword:
        wanted = keyword.lower()
        # Keywords are a JSON list; SQLite cannot look inside it portably.
        analyses = analyses.filter(
            pk__in=[a.pk for a in analyses if wanted in map(str.lower, a.keywords)]
        )
    if inspire is not None:
        # Given at all, it must be a record number: an empty one is a mistake.
        if not inspire.isdigit() or int(inspire) < 1:
            raise InvalidInput("$.inspire: must be an INSPIRE record number")
        analyses = analyses.filter(references__inspire=int(inspire))
    if hepdata_doi:
        analyses = analyses.filter(references__hepdata__doi=hepdata_doi)
    return analyses
