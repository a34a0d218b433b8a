"""Reach a Docker engine, starting Debian's dockerd if none is running.

Used by `make images` and the tests on a development or CI machine, never by
the platform itself (a deployment runs its engine as a service). dockerd is
started so that it changes nothing on the host's network: no bridge, no
iptables rules, no forwarding; step containers run with no network anyway.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import docker
import docker.errors

DOCKERD_FLAGS = [
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
    "--ip-forward=false",
]


class EngineUnavailable(Exception):
    pass


def reachable() -> docker.DockerClient | None:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def engine_ensure(log: Path, wait_seconds: float = 60) -> docker.DockerClient:
    """A client of the running engine; start dockerd (logging to ``log``) first
    if none answers. Raises EngineUnavailable saying what is missing."""
    client = reachable()
    if client is not None:
        return client
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable(
            "no Docker engine answers and dockerd is not installed "
            "(apt-get install docker.io)"
        )

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # it outlives the tests that started it
        )
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        client = reachable()
        if client is not None:
            return client
        time.sleep(0.5)
    raise EngineUnavailable(
        f"dockerd did not answer within {wait_seconds:.0f} s; see {log}"
    )
