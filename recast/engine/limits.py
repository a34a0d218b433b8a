"""What a step may use on a container backend: memory, CPUs and network.

A step can ask for its own figures in its environment's ``resources`` list
(``{memory_mb: 8192}``, ``{cpus: 2}``, ``network``); anything it does not ask
for gets the platform's defaults, and the network stays off unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpus: int
    network: bool = False


def step_limits(resources: list[Any], memory_mb: int, cpus: int) -> Limits:
    """The step's limits: its own requests over the defaults given."""
    network = False
    for resource in resources:
        if isinstance(resource, str) and resource.lower() == "network":
            network = True
        elif isinstance(resource, dict):
            memory_mb = int(resource.get("memory_mb", memory_mb))
            cpus = int(resource.get("cpus", cpus))
            network = network or bool(resource.get("network", False))
    return Limits(memory_mb, cpus, network)
