"""Check an uploaded signal against the analysis' background-only workspace,
before anything is stored: made for this workspace, applicable to it, finite,
and adding a sample that carries the parameter of interest.

Patches of the analysis' own patchset are not checked again: the catalogue
loader checked their digest when it loaded them.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import jsonpatch
import jsonpointer

from recast.catalogue.likelihood import pyhf_digest
from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput
from recast.storage.services import blob_read


@lru_cache(maxsize=4)
def workspace(sha256: str) -> Any:
    return json.loads(blob_read(sha256))


@lru_cache(maxsize=4)
def workspace_digest(sha256: str) -> str:
    """pyhf's digest of the workspace: worth keeping, since a patchset upload
    checks every one of its patches against it."""
    return pyhf_digest(workspace(sha256))


def non_finite(value: Any, pointer: str = "") -> str | None:
    """The JSON Pointer of the first NaN or infinity in ``value``, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return pointer or "/"
    children: Any = ()
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    for key, child in children:
        escaped = str(key).replace("~", "~0").replace("/", "~1")
        found = non_finite(child, f"{pointer}/{escaped}")
        if found is not None:
            return found
    return None


def pois(document: Any) -> set[str]:
    measurements = document.get("measurements") if isinstance(document, dict) else []
    return {
        str(m["config"]["poi"])
        for m in measurements or []
        if isinstance(m, dict)
        and isinstance(m.get("config"), dict)
        and m["config"].get("poi")
    }


def carries(document: Any, poi: str) -> bool:
    """Whether some sample of the patched workspace has the POI as a normfactor."""
    return any(
        modifier.get("type") == "normfactor" and modifier.get("name") == poi
        for channel in document.get("channels") or []
        for sample in channel.get("samples") or []
        for modifier in sample.get("modifiers") or []
        if isinstance(modifier, dict)
    )


def signal_check(
    analysis: Analysis,
    document: Any,
    operations: Any,
    metadata: dict[str, Any],
    field: str,
) -> None:
    """Raise InvalidInput, naming ``field``, unless the patch is a usable signal.

    ``document`` is the whole file as read, ``operations`` its JSON Patch and
    ``metadata`` its pyhf patch metadata (empty for a bare JSON Patch).
    """
    where = non_finite(document)
    if where is not None:
        raise InvalidInput(
            f"$.{field}: the patch holds NaN or infinity at {where}; every yield "
            "and uncertainty must be a finite number"
        )

    background = workspace(analysis.bkgonly_sha256)
    digest = workspace_digest(analysis.bkgonly_sha256)
    expected = (metadata.get("digests") or {}).get("sha256")
    if isinstance(expected, str) and expected != digest:
        raise InvalidInput(
            f"$.{field}: this patch was made for another workspace (its "
            f"metadata.digests.sha256 is {expected[:12]}…, the background-only "
            f"workspace of '{analysis.slug}' is {digest[:12]}…)"
        )

    try:
        patched = jsonpatch.apply_patch(background, operations)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise InvalidInput(
            f"$.{field}: the patch does not apply to the background-only workspace "
            f"of '{analysis.slug}' ({exc}); was it made for another workspace?"
        ) from None
    except (TypeError, AttributeError, KeyError):
        raise InvalidInput(
            f"$.{field}: the patch's operations are not JSON Patch operations "
            "(objects with 'op', 'path' and 'value')"
        ) from None

    missing = [poi for poi in sorted(pois(background)) if not carries(patched, poi)]
    if missing:
        raise InvalidInput(
            f"$.{field}: the patch adds no sample with the parameter of interest "
            f"'{missing[0]}'; a signal sample must carry a normfactor modifier of "
            "that name"
        )
