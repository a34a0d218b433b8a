"""Server processes the tests start: a free loopback port, and waiting until a
started server answers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_server(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    path: str = "/api/v1/analyses/",
    seconds: float = 60,
) -> None:
    """Return once ``url + path`` answers; fail with the server's log if the
    process exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            requests.get(f"{url}{path}", timeout=10)
            return
        except requests.RequestException:
            # Not listening yet, or too busy to answer on a loaded machine.
            time.sleep(0.3)
    raise AssertionError(f"the server did not start:\n{log.read_text()}")
