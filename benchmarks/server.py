"""A platform of its own for a benchmark: a fresh var folder, the catalogue of
a workflows folder, an API token, and ``recast serve`` (gunicorn) on loopback.

The database is SQLite in that folder unless ``RECAST_BENCH_DATABASE_URL``
names another (it must be empty or already hold this platform's schema);
without a broker the server runs requests on its own background threads.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
RECAST = str(Path(sys.executable).with_name("recast"))
MANAGE = [sys.executable, str(REPO / "manage.py")]
FINISHED = ("succeeded", "failed", "cancelled")
# Seldom enough that answering the polls takes nothing from the run's cores.
POLL_SECONDS = 0.25
# The platform's own variables that must not leak in from the caller's shell.
OWN = ("DATABASE_URL", "CELERY_BROKER_URL", "RECAST_URL", "RECAST_TOKEN")


@dataclass
class Server:
    url: str
    token: str
    var: Path
    env: dict[str, str]
    pid: int = 0  # the server's own process (gunicorn's master)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def get(self, path: str) -> Any:
        answer = requests.get(
            f"{self.url}/api/v1/{path}", headers=self.headers, timeout=60
        )
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = requests.post(
            f"{self.url}/api/v1/{path}", json=body, headers=self.headers, timeout=60
        )
        answer.raise_for_status()
        return answer.json()


def until_finished(server: Server, request_id: str, started: float) -> Any:
    """Wait for the request to end; return seconds from ``started`` (a
    ``time.time()`` taken before the POST) to the end the server recorded,
    and the request's detail. The server's clock is this machine's."""
    while True:
        detail = server.get(f"requests/{request_id}/")
        if detail["status"] in FINISHED:
            ended = datetime.fromisoformat(detail["finished_at"]).timestamp()
            return ended - started, detail
        time.sleep(POLL_SECONDS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def platform_env(var: Path, workflows: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN}
    env.update(
        RECAST_VAR_DIR=str(var),
        RECAST_WORKFLOWS_DIR=str(workflows),
        RECAST_ENVS_DIR=os.environ.get("RECAST_ENVS_DIR", str(REPO / "var" / "envs")),
        RECAST_LOG_LEVEL="WARNING",
        XDG_CONFIG_HOME=str(var),
        # A benchmark's clients poll and hammer on purpose: no rate limit. The
        # limits still run, per second: a limiter keeps the time of every
        # answer in its window, and a minute of a benchmark's answers (tens
        # of thousands, copied in and out of the cache twice a request) cost
        # more than a deployment's limits ever hold (600 or 1200).
        RECAST_THROTTLE_USER="10000000/second",
        RECAST_THROTTLE_ANON="10000000/second",
        RECAST_THROTTLE_ADDRESS="10000000/second",
    )
    if os.environ.get("RECAST_BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["RECAST_BENCH_DATABASE_URL"]
    env.update(extra)
    return env


def prepare(env: dict[str, str]) -> str:
    """Migrate, load the catalogue, and return a new API token."""
    subprocess.run([*MANAGE, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*MANAGE, "catalogue_load"], env=env, check=True, capture_output=True
    )
    user = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    return subprocess.run(
        [*MANAGE, "create_token", user],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            requests.get(f"{url}/api/v1/analyses/", timeout=30)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not start:\n{log.read_text()}")


@contextmanager
def serve(workflows: Path, workers: int = 2, **extra: str) -> Iterator[Server]:
    """A running server on a fresh platform; removed afterwards."""
    var = Path(tempfile.mkdtemp(prefix="recast-bench-"))
    env = platform_env(var, workflows, **extra)
    token = prepare(env)
    port = free_port()
    log_path = var / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [RECAST, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url, process, log_path)
            yield Server(url, token, var, env, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    shutil.rmtree(var, ignore_errors=True)
