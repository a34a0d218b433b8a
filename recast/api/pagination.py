"""Limit/offset pagination that refuses a bad ``limit`` or ``offset``.

DRF's own class quietly falls back to the first page when either is not a
number, so a client with a bug never learns of it. It also counts every
list before reading its page; this one reads the page first, and counts only
when the page cannot tell the total.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.views import APIView

MAX_LIMIT = 1000
Item = TypeVar("Item", bound=Model)
Row = TypeVar("Row")


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def paginate_queryset(
        self,
        queryset: QuerySet[Item, Row],
        request: Request,
        view: APIView | None = None,
    ) -> list[Row] | None:
        """The page, with ``self.count`` set as DRF sets it."""
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None

        self.offset = self.get_offset(request)
        page = list(queryset[self.offset : self.offset + self.limit])
        self.count = total_from(page, self.offset, self.limit)
        if self.count is None:
            self.count = self.get_count(queryset)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return page

    def get_limit(self, request: Request) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        return whole_number(self.limit_query_param, raw, low=1, high=MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return whole_number(self.offset_query_param, raw, low=0, high=None)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            low = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"]["minimum"] = low
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["maximum"] = MAX_LIMIT
        return parameters


def whole_number(name: str, raw: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"'{raw}' is not a whole number"]}) from None
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValidationError({name: [f"{value} is out of range: {bounds}"]})
    return value


def total_from(page: list[Any], offset: int, limit: int) -> int | None:
    """The number of rows in all, when one page shows it: a page that is not
    full and not empty ends the list, and so does an empty first page. None
    when only a count can say (a full page, or an offset past the end)."""
    if page and len(page) < limit:
        return offset + len(page)
    if not page and offset == 0:
        return 0
    return None
