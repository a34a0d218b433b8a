"""The platform's domain exceptions. Each carries a stable code, a message a
person can act on, optional details (for validation: one entry per failing
field with its JSON path) and the HTTP status the API answers with.
"""

from __future__ import annotations

from typing import Any


class RecastError(Exception):
    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or []

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(RecastError):
    """A document or request that does not satisfy its schema or rules."""

    code = "invalid"
    status = 400


class NotFound(RecastError):
    code = "not_found"
    status = 404


class Conflict(RecastError):
    """The action does not fit the current state (a finished run cannot start)."""

    code = "conflict"
    status = 409


class TooLarge(RecastError):
    code = "too_large"
    status = 413


class QuotaExceeded(RecastError):
    """A request beyond its owner's limits; the message names the limit and
    the current usage."""

    code = "quota_exceeded"
    status = 429
