"""Apply a signal patch to a background-only workspace and check the result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import pyhf

from . import StepError
from .documents import Owned, copied_along


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StepError(f"{path.name}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepError(f"{path.name}: not valid JSON ({exc})") from None


def patch_operations(
    signal: Any, name: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return the JSON Patch operations and metadata of a signal document.

    A signal is either a bare JSON Patch (a list of operations) or one patch of
    a pyhf patchset (an object with ``metadata`` and ``patch``).
    """
    if isinstance(signal, list):
        return signal, {}
    if isinstance(signal, dict) and isinstance(signal.get("patch"), list):
        return signal["patch"], dict(signal.get("metadata") or {})
    raise StepError(
        f"{name}: a signal must be a JSON Patch (a list of operations) "
        "or one patch of a pyhf patchset (an object with 'metadata' and 'patch')"
    )


def workspace_digest(spec: dict[str, Any]) -> str:
    return pyhf.utils.digest(spec, algorithm="sha256")


def check_digest(metadata: dict[str, Any], spec: dict[str, Any], name: str) -> None:
    expected = (metadata.get("digests") or {}).get("sha256")
    if expected and expected != workspace_digest(spec):
        raise StepError(
            f"{name}: this patch was made for another workspace "
            f"(sha256 {expected[:12]}..., this workspace is "
            f"{workspace_digest(spec)[:12]}...)"
        )


def brief(exc: Exception, limit: int = 300) -> str:
    """jsonpatch's message, cut short: it may quote the whole workspace."""
    text = str(exc)
    return text if len(text) <= limit else f"{text[:limit]}... (cut)"


def apply_patch(
    spec: dict[str, Any], ops: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    """``spec`` patched; ``spec`` itself is left unchanged (parts are shared)."""
    try:
        patched = jsonpatch.apply_patch(copied_along(spec, ops), ops, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise StepError(
            f"{name}: the signal patch does not fit the workspace: {brief(exc)}"
        ) from None
    if not isinstance(patched, dict):
        raise StepError(f"{name}: the signal patch replaces the whole workspace")
    return patched


def poi_name(spec: dict[str, Any]) -> str:
    measurements = spec.get("measurements") or []
    if not measurements:
        raise StepError("the workspace has no measurement")
    return str(measurements[0]["config"]["poi"])


def check_signal(spec: dict[str, Any], name: str) -> None:
    """Refuse a patched workspace in which nothing carries the parameter of interest."""
    poi = poi_name(spec)
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            for modifier in sample.get("modifiers", []):
                if modifier["name"] == poi and modifier["type"] == "normfactor":
                    return
    raise StepError(
        f"{name}: after patching, no sample carries the parameter of interest "
        f"'{poi}'; the patch adds no signal"
    )


def check_workspace(spec: dict[str, Any], name: str) -> pyhf.Workspace:
    try:
        # The workspace is only checked here, and never changed: no copy.
        return pyhf.Workspace(Owned(spec))
    except pyhf.exceptions.InvalidSpecification as exc:
        raise StepError(
            f"{name}: the patched workspace is not valid HistFactory: {exc}"
        ) from None


def changed_part(patched: dict[str, Any], bkgonly: dict[str, Any]) -> dict[str, Any]:
    """The patched workspace without the samples it shares, unchanged, with bkgonly.

    The background-only workspace is validated once per batch; validating only
    what a patch changed gives the same verdict on each sample in a fraction of
    the time (the schema checks each sample on its own). One sample stays in
    every channel so that the reduced workspace is still well formed.
    """
    before = {
        channel["name"]: channel["samples"] for channel in bkgonly.get("channels", [])
    }
    channels = []
    for channel in patched["channels"]:
        old = before.get(channel["name"], [])
        new = [s for s in channel["samples"] if s not in old]
        channels.append({**channel, "samples": new or channel["samples"][:1]})
    return {**patched, "channels": channels}


def check_structure(spec: dict[str, Any], name: str) -> None:
    """pyhf's own checks of the whole workspace beyond its schema."""
    try:
        pyhf.Workspace(Owned(spec), validate=False)
    except pyhf.exceptions.InvalidSpecification as exc:
        raise StepError(
            f"{name}: the patched workspace is not valid HistFactory: {exc}"
        ) from None


def patch_one(
    bkgonly: dict[str, Any], signal_path: Path, outdir: Path
) -> dict[str, Any]:
    name = signal_path.stem
    ops, metadata = patch_operations(load_json(signal_path), signal_path.name)
    check_digest(metadata, bkgonly, signal_path.name)

    patched = apply_patch(bkgonly, ops, signal_path.name)
    check_signal(patched, signal_path.name)
    check_workspace(changed_part(patched, bkgonly), signal_path.name)
    check_structure(patched, signal_path.name)

    target = outdir / name / "workspace.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(patched, sort_keys=True))
    return {
        "point": name,
        # Relative to the manifest: a step cache hands these outputs to later
        # runs in folders of their own, where this run's path would not exist.
        "workspace": str(target.relative_to(outdir)),
        "signal_sha256": hashlib.sha256(signal_path.read_bytes()).hexdigest(),
        "metadata": metadata,
    }


def run(bkgonly_path: Path, signals: list[Path], outdir: Path) -> Path:
    bkgonly = load_json(bkgonly_path)
    check_workspace(bkgonly, bkgonly_path.name)
    points = [patch_one(bkgonly, path, outdir) for path in signals]

    manifest = outdir / "patched.json"
    manifest.write_text(json.dumps({"points": points}, indent=1))
    return manifest
