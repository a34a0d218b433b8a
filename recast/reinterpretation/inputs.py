"""Check a point's inputs against its analysis before anything is stored.

Files arrive either as uploaded bytes or as ``sha256:<digest>`` of a file stored
earlier. A public-likelihood signal can also be named: a patch of the
analysis' patchset, which is then cut out into a signal file of its own.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from recast.catalogue.loader import file_fields
from recast.catalogue.models import Analysis
from recast.core import jsonschema as schemas
from recast.core.errors import InvalidInput
from recast.reinterpretation.signals import signal_check
from recast.storage.models import Blob
from recast.storage.services import blob_read

SHA256_REF = re.compile(r"sha256:([0-9a-f]{64})")
UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass
class PointInputs:
    """A checked point: its name, model parameters, inputs (files as
    references) and the bytes of files not stored yet."""

    point: str
    model_parameters: dict[str, Any]
    inputs: dict[str, Any]
    new_files: dict[str, bytes] = field(default_factory=dict)


def sha256_ref(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def point_name(text: str) -> str:
    """A name safe in file names and shell commands."""
    name = UNSAFE.sub("_", text).strip("._")[:200]
    return name or "point"


@lru_cache(maxsize=8)
def patchset(sha256: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(blob_read(sha256))
    return document


def patch_names(analysis: Analysis) -> list[str]:
    if not analysis.patchset_sha256:
        return []
    return [
        p["metadata"]["name"] for p in patchset(analysis.patchset_sha256)["patches"]
    ]


def named_patch(analysis: Analysis, name: str) -> tuple[bytes, dict[str, Any]]:
    """The signal file for patch ``name`` and its metadata (with the labels)."""
    if not analysis.patchset_sha256:
        raise InvalidInput(
            f"$.patch: analysis '{analysis.slug}' has no patchset; upload a signal "
            "file instead"
        )
    document = patchset(analysis.patchset_sha256)
    for patch in document["patches"]:
        if patch["metadata"]["name"] == name:
            metadata = {
                **patch["metadata"],
                "labels": document["metadata"].get("labels", []),
                "digests": document["metadata"].get("digests", {}),
            }
            content = json.dumps(
                {"metadata": metadata, "patch": patch["patch"]}, sort_keys=True
            ).encode()
            return content, metadata
    examples = ", ".join(patch_names(analysis)[:3])
    raise InvalidInput(
        f"$.patch: no patch named '{name}' in the patchset of '{analysis.slug}' "
        f"(for example: {examples})"
    )


def signal_document(content: bytes, field_name: str) -> tuple[Any, Any, dict[str, Any]]:
    """A signal as read, its JSON Patch operations and its metadata (empty for a
    bare patch)."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"$.{field_name}: not valid JSON ({exc})") from None
    if isinstance(document, list):
        return document, document, {}
    if isinstance(document, dict) and isinstance(document.get("patch"), list):
        metadata = document.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        return document, document["patch"], metadata
    raise InvalidInput(
        f"$.{field_name}: a signal must be a JSON Patch (a list of operations) "
        "or one patch of a pyhf patchset (an object with 'metadata' and 'patch')"
    )


def signal_metadata(content: bytes, field_name: str) -> dict[str, Any]:
    return signal_document(content, field_name)[2]


def patch_parameters(metadata: dict[str, Any]) -> dict[str, Any]:
    labels, values = metadata.get("labels") or [], metadata.get("values") or []
    if not isinstance(labels, list) or not isinstance(values, list):
        return {}
    return model_parameters(dict(zip(labels, values, strict=False)))


def model_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters with a number or a string as value (others say nothing
    a results table could show)."""
    return {
        str(k): v
        for k, v in parameters.items()
        if isinstance(v, int | float | str) and not isinstance(v, bool)
    }


Uploads = dict[str, bytes | list[bytes]]


def file_content(where: str, value: Any) -> bytes:
    """The bytes of a file input given as ``sha256:<digest>`` of a stored file."""
    match = SHA256_REF.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise InvalidInput(
            f"$.{where}: give a file, or sha256:<digest> of a file uploaded earlier"
        )
    if not Blob.objects.filter(sha256=match.group(1)).exists():
        raise InvalidInput(f"$.{where}: no uploaded file has sha256 {match.group(1)}")
    return blob_read(match.group(1))


def reference(content: bytes | list[bytes]) -> str | list[str]:
    if isinstance(content, list):
        return [sha256_ref(c) for c in content]
    return sha256_ref(content)


def files_of(
    schema: dict[str, Any], stored: dict[str, Any], uploads: Uploads
) -> dict[str, bytes]:
    """Every file the point's inputs name, keyed by its JSON path below the
    inputs (``signal``, ``signals[1]``): uploaded bytes or stored files."""
    found = {}
    for key, many in file_fields(schema).items():
        if key not in stored:
            continue
        given = uploads.get(key)
        if not many:
            found[key] = (
                given if isinstance(given, bytes) else file_content(key, stored[key])
            )
            continue
        uploaded = given if isinstance(given, list) else []
        for index, value in enumerate(stored[key]):
            where = f"{key}[{index}]"
            found[where] = (
                uploaded[index] if index < len(uploaded) else file_content(where, value)
            )
    return found


def check_point(
    analysis: Analysis,
    inputs: Any,
    uploads: Uploads | None = None,
    name: str = "",
) -> PointInputs:
    """Check one point's inputs; raise InvalidInput naming the field at fault.

    ``uploads`` holds the bytes of files sent with the point (a list of bytes
    for an input that is a list of files); they are stored by sha256 later.
    """
    uploads = uploads or {}
    if not isinstance(inputs, dict):
        raise InvalidInput("$: the inputs of a point must be a JSON object")
    stored = {
        **inputs,
        **{key: reference(content) for key, content in uploads.items()},
    }
    schemas.validate(stored, analysis.input_schema, "inputs")

    new_files = files_of(analysis.input_schema, stored, uploads)
    if analysis.kind == Analysis.Kind.PUBLIC_LIKELIHOOD:
        return likelihood_point(analysis, stored, new_files, name)
    # Other kinds take the point's model parameters from the input of that
    # name, when the analysis' input schema declares one.
    parameters = stored.get("model_parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    return PointInputs(
        point_name(name or "point"), model_parameters(parameters), stored, new_files
    )


def likelihood_point(
    analysis: Analysis, stored: dict[str, Any], files: dict[str, bytes], name: str
) -> PointInputs:
    if "patch" in stored:
        content, metadata = named_patch(analysis, stored["patch"])
        files["signal"] = content
        stored = {**stored, "signal": sha256_ref(content)}
        name = name or stored["patch"]
    else:
        document, operations, metadata = signal_document(files["signal"], "signal")
        signal_check(analysis, document, operations, metadata, "signal")
        name = name or str(metadata.get("name") or "signal")
    return PointInputs(point_name(name), patch_parameters(metadata), stored, files)


# Called with the number of points a request would have and the field they
# come from, before any point is checked; raises if there are too many.
LimitCheck = Callable[[int, str], None]


def no_limit(count: int, field_name: str) -> None:
    return None


def glob_points(
    analysis: Analysis,
    pattern: str,
    limit: LimitCheck = no_limit,
    shared: dict[str, Any] | None = None,
) -> list[PointInputs]:
    """One point per patch of the analysis' patchset whose name matches
    ``pattern``, each with the ``shared`` inputs as well."""
    names = [
        name for name in patch_names(analysis) if fnmatch.fnmatchcase(name, pattern)
    ]
    if not names:
        raise InvalidInput(f"$.scan: no patch of '{analysis.slug}' matches '{pattern}'")
    limit(len(names), "scan")
    return [check_point(analysis, {**(shared or {}), "patch": name}) for name in names]


def patchset_points(
    analysis: Analysis,
    content: bytes,
    field_name: str = "patchset",
    limit: LimitCheck = no_limit,
    shared: dict[str, Any] | None = None,
) -> list[PointInputs]:
    """One point per patch of an uploaded pyhf patchset, each with the
    ``shared`` inputs as well."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"$.{field_name}: not valid JSON ({exc})") from None
    patches = document.get("patches") if isinstance(document, dict) else None
    if not isinstance(patches, list) or not patches:
        raise InvalidInput(
            f"$.{field_name}: not a pyhf patchset with at least one patch"
        )
    limit(len(patches), field_name)

    metadata = (
        document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    )
    points = []
    for index, patch in enumerate(patches):
        if not isinstance(patch, dict) or not isinstance(patch.get("metadata"), dict):
            raise InvalidInput(
                f"$.{field_name}.patches[{index}]: a patch needs metadata and a "
                "patch list"
            )
        single = {
            "metadata": {
                **patch["metadata"],
                "labels": metadata.get("labels", []),
                "digests": metadata.get("digests", {}),
            },
            "patch": patch.get("patch"),
        }
        signal = json.dumps(single, sort_keys=True).encode()
        try:
            points.append(check_point(analysis, shared or {}, {"signal": signal}))
        except InvalidInput as exc:
            where = f"$.{field_name}.patches[{index}]"
            raise InvalidInput(
                exc.message.replace("$.signal", where, 1), details=exc.details
            ) from None
    return points
