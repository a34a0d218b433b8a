"""One way to validate a document against a JSON Schema and report every problem
with the JSON path of the field it concerns."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from django.conf import settings

from recast.core.errors import InvalidInput


def json_path(parts: Iterable[Any], base: str = "$") -> str:
    path = base
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@cache
def spec(name: str) -> dict[str, Any]:
    """The schema ``specs/<name>.json`` (for instance ``analysis/v1``)."""
    path = Path(settings.BASE_DIR) / "specs" / f"{name}.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def problems(
    document: Any, schema: dict[str, Any], base: str = "$"
) -> list[dict[str, str]]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(
        validator.iter_errors(document), key=lambda e: list(e.absolute_path)
    )
    return [
        {"path": json_path(e.absolute_path, base), "message": e.message} for e in errors
    ]


def validate(
    document: Any, schema: dict[str, Any], source: str, base: str = "$"
) -> None:
    """Raise InvalidInput naming ``source`` and the first failing path (under
    ``base`` when the document sits inside another); every failing path is in
    the details."""
    found = problems(document, schema, base)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InvalidInput(
            f"{source}: {first['path']}: {first['message']}{more}", details=found
        )


def check_schema(schema: Any, source: str) -> None:
    """Raise InvalidInput if ``schema`` is not itself a valid JSON Schema."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{source}: a JSON Schema must be an object")
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = json_path(exc.absolute_path)
        raise InvalidInput(
            f"{source}: {path}: not a valid JSON Schema: {exc.message}"
        ) from None
