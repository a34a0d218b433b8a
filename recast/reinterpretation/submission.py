"""Turn what a client sent (JSON fields and uploaded files) into checked points.

Exactly one source of points per request: ``inputs`` (one point), ``points``
(a list of inputs), ``patches`` (names), ``scan`` (a glob over the patch
names), an uploaded ``signal`` file, or an uploaded ``patchset``.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput, TooLarge
from recast.reinterpretation.inputs import (
    PointInputs,
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


def named_patches(analysis: Analysis, names: Any) -> list[PointInputs]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("$.patches: must be a list of patch names")
    return [check_point(analysis, {"patch": name}) for name in names]


def uploaded_signal(
    analysis: Analysis, content: bytes, filename: str, name: str
) -> PointInputs:
    fallback = filename.rsplit("/", 1)[-1].removesuffix(".json")
    default = str(signal_metadata(content, "signal").get("name") or fallback)
    return check_point(analysis, {}, {"signal": content}, name or default)


def points_from(
    analysis: Analysis, data: dict[str, Any], files: dict[str, tuple[str, bytes]]
) -> list[PointInputs]:
    """Check the request's points; raise InvalidInput or TooLarge naming the field."""
    given = [s for s in SOURCES if data.get(s) not in (None, "") or s in files]
    if len(given) != 1:
        raise InvalidInput(
            f"give exactly one of {', '.join(SOURCES)} (got "
            f"{', '.join(given) or 'none'})"
        )
    source = given[0]
    for name, (_, content) in files.items():
        check_size(name, content)

    name = str(data.get("name") or "")
    if source == "inputs":
        inputs = json_field(data, "inputs")
        points = [check_point(analysis, inputs, name=name)]
    elif source == "points":
        points = listed_points(analysis, json_field(data, "points"))
    elif source == "patches":
        points = named_patches(analysis, json_field(data, "patches"))
    elif source == "scan":
        points = glob_points(analysis, str(data["scan"]))
    elif source == "signal":
        points = [
            uploaded_signal(analysis, files["signal"][1], files["signal"][0], name)
        ]
    else:
        points = patchset_points(analysis, files["patchset"][1])

    if len(points) > settings.RECAST_MAX_POINTS:
        raise InvalidInput(
            f"a request may have at most {settings.RECAST_MAX_POINTS} points; this "
            f"one has {len(points)}"
        )
    return points


def within_quota(owner: User | None, points: list[PointInputs]) -> None:
    """Refuse, before anything is stored, a request beyond its owner's limits
    (raises QuotaExceeded naming the limit and the usage)."""
    from recast.quotas.services import submit_check

    if owner is not None:
        submit_check(owner, len(points))
