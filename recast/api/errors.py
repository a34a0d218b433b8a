"""The one error shape of the API: ``{"code", "message", "details"}``.

Domain errors carry their own code and status; DRF's errors are translated
(validation problems become details with the JSON path of each field); any
other exception is a 500 whose message tells nothing of the internals.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from recast.core.errors import RecastError

logger = logging.getLogger(__name__)


def flatten(detail: Any, path: str = "$") -> list[dict[str, str]]:
    """DRF's nested error details as one entry per failing field."""
    if isinstance(detail, dict):
        return [
            item
            for key, value in detail.items()
            for item in flatten(value, child(path, key))
        ]
    if isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            return [{"path": path, "message": str(v)} for v in detail]
        return [
            item
            for i, value in enumerate(detail)
            for item in flatten(value, f"{path}[{i}]")
        ]
    return [{"path": path, "message": str(detail)}]


def child(path: str, key: str) -> str:
    return path if key == "non_field_errors" else f"{path}.{key}"


def body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {"code": code, "message": message}
    if details:
        document["details"] = details
    return document


def drf_error(exc: exceptions.APIException) -> Response:
    if isinstance(exc, exceptions.ValidationError):
        details = flatten(exc.detail)
        first = details[0]
        message = (
            f"{first['path']}: {first['message']}"
            if first["path"] != "$"
            else first["message"]
        )
        return Response(
            body("invalid", message, details), status=status.HTTP_400_BAD_REQUEST
        )

    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    response = Response(body(str(code), str(exc.detail)), status=exc.status_code)
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        response["Retry-After"] = str(int(wait) + 1)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response["WWW-Authenticate"] = "Bearer"
    return response


def handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, RecastError):
        return Response(exc.as_dict(), status=exc.status)
    if isinstance(exc, Http404):
        return Response(
            body("not_found", "not found"), status=status.HTTP_404_NOT_FOUND
        )
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        return drf_error(exc)
    view = context.get("view")
    logger.exception(
        "unexpected error in %s", type(view).__name__ if view else "the API"
    )
    return Response(
        body("internal", "internal error; the operators have the details"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
