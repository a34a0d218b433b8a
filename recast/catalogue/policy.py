"""What a preserved step may ask of the platform, decided in one place.

The catalogue loader refuses a spec that breaks it, and ``recast lint`` reports
the same problems as findings. A step runs unprivileged in its own image and
sees only its inputs: it may not mount anything from the host (CVMFS, grid
proxies, Kerberos tickets, host paths), ask for privileged mode, or use an
environment type that recast's backends cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recast.core.errors import InvalidInput

ALLOWED_ENVIRONMENTS = {"docker-encapsulated"}
HOST_RESOURCES = {"cvmfs", "gridproxy", "kerberos"}
HOST_PATH_KEYS = {"host_path", "hostpath", "hostpaths", "mount", "mounts", "volume"}

HOST_HINT = "ship what the step needs in its image or as an input file"
PRIVILEGED_HINT = "steps run unprivileged, with every capability dropped"


class PolicyViolation(InvalidInput):
    """A spec the catalogue refuses because a step breaks the policy."""


@dataclass(frozen=True)
class Violation:
    """``field`` is relative to the step's ``environment``."""

    field: str
    message: str
    hint: str


def environment_violations(environment: dict[str, Any]) -> list[Violation]:
    """Every way ``environment`` (a packtivity step's) breaks the policy."""
    kind = environment.get("environment_type")
    if kind not in ALLOWED_ENVIRONMENTS:
        return [
            Violation(
                "environment_type",
                f"environment type '{kind}' cannot run on recast's backends",
                f"use {', '.join(sorted(ALLOWED_ENVIRONMENTS))}",
            )
        ]
    found = []
    if any(key.lower() == "privileged" and value for key, value in environment.items()):
        found.append(privileged("privileged"))
    for index, resource in enumerate(environment.get("resources") or []):
        found += resource_violations(f"resources[{index}]", resource)
    return found


def privileged(field: str) -> Violation:
    return Violation(field, "the step asks for privileged mode", PRIVILEGED_HINT)


def resource_violations(field: str, resource: Any) -> list[Violation]:
    if isinstance(resource, str):
        label = resource.lower()
        if label == "privileged":
            return [privileged(field)]
        if label in HOST_RESOURCES:
            return [host_mount(field, resource)]
        return []
    if not isinstance(resource, dict):
        return []
    found = []
    for key, value in resource.items():
        label = str(key).lower()
        if label == "privileged" and value:
            found.append(privileged(f"{field}.{key}"))
        elif label in HOST_RESOURCES and value:
            found.append(host_mount(f"{field}.{key}", str(key)))
        elif label in HOST_PATH_KEYS:
            found.append(host_mount(f"{field}.{key}", f"host path {value}"))
    return found


def host_mount(field: str, what: str) -> Violation:
    return Violation(field, f"the step asks for a host mount ({what})", HOST_HINT)
