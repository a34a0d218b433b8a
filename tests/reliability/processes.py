"""Real processes for the reliability tests: the web server and Celery workers
on the test database (PostgreSQL) and a Redis broker database of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REPO
from tests.servers import free_port, wait_for_server

ARTIFACTS = REPO / "tests" / "artifacts"

REQUIRED = os.environ.get("RECAST_REQUIRE_SERVICES") == "1"
RECAST = str(Path(sys.executable).with_name("recast"))


def require_services() -> None:
    """Skip without PostgreSQL and Redis, or fail when .ci/run requires them."""
    missing = ""
    if not settings.CELERY_BROKER_URL:
        missing = "CELERY_BROKER_URL is not set"
    elif connection.vendor != "postgresql":
        missing = "DATABASE_URL does not point to PostgreSQL"
    if missing and REQUIRED:
        pytest.fail(f"RECAST_REQUIRE_SERVICES=1 but {missing}")
    if missing:
        pytest.skip(missing)


def broker_url(database: int) -> str:
    """The configured Redis server, on a database index of the test's own."""
    base = settings.CELERY_BROKER_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def service_env(broker: str) -> dict[str, str]:
    """What a server or worker process needs to share the test's state."""
    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": broker,
        "RECAST_WORK_DIR": str(settings.RECAST_WORK_DIR),
        "RECAST_ARCHIVE_DIR": str(settings.RECAST_ARCHIVE_DIR),
        "RECAST_UPLOAD_DIR": str(settings.RECAST_UPLOAD_DIR),
        "RECAST_ENVS_DIR": str(settings.RECAST_ENVS_DIR),
        # CI runs as root; these processes run no untrusted code themselves.
        "C_FORCE_ROOT": "1",
    }


def start_server(
    env: dict[str, str], log: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`recast serve` on loopback; returns the process and its URL once it answers."""
    port = port or free_port()
    with log.open("ab") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [RECAST, "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(url, process, log)
    return process, url


def start_worker(
    env: dict[str, str], log: Path, concurrency: int = 2
) -> subprocess.Popen[bytes]:
    """`celery -A recast worker` with ``concurrency`` processes; returns once
    it listens (a submit before that would wait for its start-up only)."""
    with log.open("ab") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "recast", "worker",
             "--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def figures_record(document: str, name: str, figures: dict[str, Any]) -> None:
    """Add one test's figures under ``name`` to tests/artifacts/``document``
    (docs/reliability.md quotes them), keeping the other tests' entries."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / document
    known = json.loads(path.read_text()) if path.exists() else {}
    known[name] = figures
    path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
