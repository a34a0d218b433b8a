"""Reads of the catalogue."""

from __future__ import annotations

from django.db.models import QuerySet

from recast.catalogue.models import Analysis
from recast.core.errors import NotFound


def analysis_list() -> QuerySet[Analysis]:
    return Analysis.objects.order_by("slug")


def analysis_get(slug: str) -> Analysis:
    try:
        return Analysis.objects.get(slug=slug)
    except Analysis.DoesNotExist:
        raise NotFound(
            f"no analysis '{slug}' in the catalogue (see `recast catalogue ls`)"
        ) from None
