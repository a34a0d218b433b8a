"""How the OpenAPI schema describes recast's token authentication."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "recast.accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer rc_…",
        }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error shape of the API.",
    "properties": {
        "code": {"type": "string", "example": "invalid"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "example": "$.inputs.signal"},
                    "message": {"type": "string"},
                },
                "required": ["path", "message"],
            },
        },
    },
    "required": ["code", "message"],
}
# Statuses any operation may answer with: bad query or body, credentials,
# permissions, a missing object, throttling; writes may also conflict with the
# object's state or carry an oversized file.
COMMON_ERRORS = {
    "400": "the request is invalid; `details` names each failing field",
    "401": "missing, expired or revoked credentials",
    "403": "not allowed for this account",
    "404": "no such object, or not visible to this account",
    "429": "throttled; retry after the `Retry-After` header's seconds",
}
WRITE_ERRORS = {
    "409": "the action does not fit the object's current state",
    "413": "an uploaded file is over the limit the message states",
    "415": "the body's media type is not one this operation reads",
}


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the error shape everywhere."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
        ERROR_SCHEMA
    )
    reference = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            errors = dict(COMMON_ERRORS)
            if method in {"post", "put", "patch", "delete"}:
                errors.update(WRITE_ERRORS)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
