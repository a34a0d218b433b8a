"""Limit/offset pagination that refuses a bad ``limit`` or ``offset``.

DRF's own class quietly falls back to the first page when either is not a
number, so a client with a bug never learns of it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 1000


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

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
