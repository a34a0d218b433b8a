"""The production path: a real Celery worker process on Redis runs a request
submitted to PostgreSQL. Needs CELERY_BROKER_URL and DATABASE_URL (set by
.ci/run); skipped otherwise, unless RECAST_REQUIRE_SERVICES=1 makes that an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from recast.catalogue.models import Analysis
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import FINISHED, Run
from recast.reinterpretation.services import request_submit
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.services]
REQUIRED = os.environ.get("RECAST_REQUIRE_SERVICES") == "1"
TIMEOUT = 600


def services_missing() -> str:
    if not settings.CELERY_BROKER_URL:
        return "CELERY_BROKER_URL is not set"
    if connection.vendor != "postgresql":
        return "DATABASE_URL does not point to PostgreSQL"
    return ""


@pytest.fixture
def worker(transactional_db: None, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    missing = services_missing()
    if missing and REQUIRED:
        pytest.fail(f"RECAST_REQUIRE_SERVICES=1 but {missing}")
    if missing:
        pytest.skip(missing)

    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "RECAST_WORK_DIR": str(settings.RECAST_WORK_DIR),
        "RECAST_ARCHIVE_DIR": str(settings.RECAST_ARCHIVE_DIR),
        "RECAST_UPLOAD_DIR": str(settings.RECAST_UPLOAD_DIR),
        "RECAST_ENVS_DIR": str(settings.RECAST_ENVS_DIR),
        "RECAST_STEP_CACHE_DIR": str(settings.RECAST_STEP_CACHE_DIR),
        # CI runs as root; the worker itself runs no untrusted code.
        "C_FORCE_ROOT": "1",
        # The worker cuts batches when it claims them, for one slot as the
        # test says (the test process' setting decides how many pulls).
        "RECAST_SCAN_SLOTS": "1",
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "recast",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--purge",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until_ready(tmp_path / "worker.log", process)
    yield process
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def wait_until_ready(log: Path, process: subprocess.Popen[bytes]) -> None:
    """Submit only once the worker listens: its --purge would erase earlier messages."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "ready." in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"the worker did not start:\n{log.read_text()}")


def wait_for(run_ids: list[str]) -> list[Run]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        runs = list(Run.objects.filter(id__in=run_ids).order_by("point"))
        if all(run.status in FINISHED for run in runs):
            return runs
        time.sleep(1)
    raise AssertionError(
        f"runs did not finish within {TIMEOUT} s: {[r.status for r in runs]}"
    )


def test_a_worker_process_runs_a_batched_scan(
    demo: Analysis, worker: subprocess.Popen[bytes], settings: Any
) -> None:
    # One slot: the three points go out as two batches (two points and one),
    # which the worker's two processes take at once.
    settings.RECAST_SCAN_SLOTS = 1
    names = ("stop_450_0", "stop_650_100", "stop_850_300")
    points = [check_point(demo, {"patch": name}) for name in names]

    request = request_submit(demo, points)
    runs = wait_for([str(run.id) for run in request.runs.all()])
    request.refresh_from_db()
    batches = [
        json.loads(Path(run.archive_path, "run.json").read_text()).get("batch")
        for run in runs
    ]

    assert [(run.point, run.status) for run in runs] == [
        ("stop_450_0", "succeeded"),
        ("stop_650_100", "succeeded"),
        ("stop_850_300", "succeeded"),
    ]
    assert runs[0].result["excluded"] is True
    assert all(
        run.attempts == 1 and Path(run.archive_path, "manifest.json").exists()
        for run in runs
    )
    assert [b and b["points"] for b in batches] == [
        ["stop_450_0", "stop_650_100"],
        ["stop_450_0", "stop_650_100"],
        None,
    ]
    assert request.status == "succeeded"
    assert worker.poll() is None
