"""Turn what a client sent (JSON fields and uploaded files) into checked points.

Exactly one source of points per request: ``inputs`` (one point), ``points``
(a list of inputs), ``patches`` (names), ``scan`` (a glob over the patch
names), an uploaded ``signal`` file, or an uploaded ``patchset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from recast.catalogue.loader import file_fields
from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput, TooLarge
from recast.reinterpretation.inputs import (
    PointInputs,
    Uploads,
    check_point,
    glob_points,
    patchset_points,
    signal_metadata,
)

SOURCES = ("inputs", "points", "patches", "scan", "signal", "patchset")


def check_size(name: str, content: bytes) -> None:
    limit = settings.UPLOAD_MAX_BYTES
    if len(content) > limit:
        raise TooLarge(
            f"$.{name}: the file is {len(content)} bytes; the limit is {limit} bytes"
        )


def within_limit(count: int, field_name: str) -> None:
    """Refuse a request with too many points before checking any of them."""
    limit = settings.RECAST_MAX_POINTS
    if count > limit:
        raise InvalidInput(
            f"$.{field_name}: a request may have at most {limit} points; this one "
            f"has {count}"
        )
    if count == 0:
        raise InvalidInput(f"$.{field_name}: a request needs at least one point")


def json_field(data: dict[str, Any], name: str) -> Any:
    """A field that multipart forms send as a JSON string."""
    value = data.get(name)
    if isinstance(value, str) and name in ("inputs", "points", "patches"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"$.{name}: not valid JSON ({exc})") from None
    return value


def listed_points(analysis: Analysis, points: Any) -> list[PointInputs]:
    if not isinstance(points, list):
        raise InvalidInput("$.points: must be a list of {inputs, name}")
    within_limit(len(points), "points")
    checked = []
    for index, point in enumerate(points):
        if not isinstance(point, dict) or not isinstance(point.get("inputs"), dict):
            raise InvalidInput(f"$.points[{index}]: must be an object with 'inputs'")
        try:
            checked.append(
                check_point(analysis, point["inputs"], name=str(point.get("name", "")))
            )
        except InvalidInput as exc:
            raise InvalidInput(
                f"$.points[{index}]: {exc.message}", details=exc.details
            ) from None
    return checked


def named_patches(
    analysis: Analysis, names: Any, shared: dict[str, Any]
) -> list[PointInputs]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("$.patches: must be a list of patch names")
    within_limit(len(names), "patches")
    return [check_point(analysis, {**shared, "patch": name}) for name in names]


def shared_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """``limits`` given beside the points: an input of every point, as JSON
    true/false or the strings a multipart form sends. Anything else goes on
    to the point's schema, which names the field in its refusal."""
    if "limits" not in data:
        return {}
    value = data["limits"]
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    return {"limits": value}


def same_limits(points: Sequence[PointInputs], source: str) -> None:
    """Refuse points that differ in ``limits``: a request's points run in
    batches, one fit step for many points, which either finds limits or not."""
    first = points[0].inputs.get("limits", True)
    for index, point in enumerate(points):
        if point.inputs.get("limits", True) != first:
            raise InvalidInput(
                f"$.{source}[{index}].inputs.limits: every point of a request "
                f"must ask the same limits (the first asks {str(first).lower()})"
            )


def uploaded_signal(
    analysis: Analysis,
    content: bytes,
    filename: str,
    name: str,
    shared: dict[str, Any],
) -> PointInputs:
    fallback = filename.rsplit("/", 1)[-1].removesuffix(".json")
    default = str(signal_metadata(content, "signal").get("name") or fallback)
    return check_point(analysis, shared, {"signal": content}, name or default)


def cache_flag(data: dict[str, Any]) -> bool:
    """``cache``: JSON true/false, or the strings a multipart form sends."""
    value = data.get("cache", True)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput("$.cache: must be true or false")


def attached_uploads(
    analysis: Analysis, attached: dict[str, list[tuple[str, bytes]]]
) -> tuple[Uploads, str]:
    """Files sent under the names of the point's file inputs, and the first
    file's name without its extension (the point's name if none is given)."""
    fields = file_fields(analysis.input_schema)
    uploads: Uploads = {}
    for name, sent in attached.items():
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise InvalidInput(
                f"$.{name}: not a file input of '{analysis.slug}' (its file "
                f"inputs: {known})"
            )
        if not fields[name] and len(sent) > 1:
            raise InvalidInput(f"$.{name}: takes one file; {len(sent)} were sent")
        contents = [content for _, content in sent]
        for content in contents:
            check_size(name, content)
        uploads[name] = contents if fields[name] else contents[0]
    first = next((sent[0][0] for sent in attached.values() if sent), "")
    return uploads, first.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def points_from(
    analysis: Analysis,
    data: dict[str, Any],
    files: dict[str, tuple[str, bytes]],
    attached: dict[str, list[tuple[str, bytes]]] | None = None,
) -> list[PointInputs]:
    """Check the request's points; raise InvalidInput or TooLarge naming the field.

    ``attached`` holds files sent under the names of the point's file inputs;
    they belong to the one point that ``inputs`` describes.
    """
    attached = attached or {}
    given = [s for s in SOURCES if data.get(s) not in (None, "") or s in files]
    if attached and "inputs" not in given:
        given.append("inputs")
    if len(given) != 1:
        raise InvalidInput(
            f"give exactly one of {', '.join(SOURCES)} (got "
            f"{', '.join(given) or 'none'})"
        )
    source = given[0]
    if source not in ("inputs", "points") and (
        analysis.kind != Analysis.Kind.PUBLIC_LIKELIHOOD
    ):
        names = ", ".join(analysis.input_schema.get("properties", {}))
        raise InvalidInput(
            f"$.{source}: '{analysis.slug}' is not a public-likelihood analysis; "
            f"give its inputs ({names}) as inputs or points"
        )
    for name, (_, content) in files.items():
        check_size(name, content)

    name = str(data.get("name") or "")
    shared = shared_inputs(data)
    if source == "inputs":
        inputs = json_field(data, "inputs") if data.get("inputs") else {}
        uploads, first = attached_uploads(analysis, attached)
        if isinstance(inputs, dict):  # anything else check_point refuses
            inputs = {**shared, **inputs}
        points = [check_point(analysis, inputs, uploads, name or first)]
    elif source == "points":
        points = listed_points(analysis, json_field(data, "points"))
        same_limits(points, "points")
    elif source == "patches":
        points = named_patches(analysis, json_field(data, "patches"), shared)
    elif source == "scan":
        points = glob_points(analysis, str(data["scan"]), within_limit, shared)
    elif source == "signal":
        points = [
            uploaded_signal(
                analysis, files["signal"][1], files["signal"][0], name, shared
            )
        ]
    else:
        points = patchset_points(
            analysis, files["patchset"][1], limit=within_limit, shared=shared
        )

    return points


def within_quota(owner: User | None, points: Sequence[PointInputs]) -> None:
    """Refuse, before anything is stored, a request beyond its owner's limits
    (raises QuotaExceeded naming the limit and the usage)."""
    from recast.quotas.services import submit_check

    if owner is not None:
        submit_check(owner, len(points))
