"""Fair dispatch with real Celery worker processes on Redis: a user's single
point, submitted just after another user's 50-point scan, finishes before the
scan's tenth point (first come, first served, it would finish last).

Runs the `sleepy` test analysis (tests/reliability/workflows: two shell steps,
well under a second a point) on two worker processes, against the test
database (PostgreSQL) and the configured Redis broker, which the test empties
first. Skipped without them, unless RECAST_REQUIRE_SERVICES=1 makes that an
error. Figures go to tests/artifacts/fair_share.json."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User

from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import FINISHED, Request, Run
from recast.reinterpretation.services import request_cancel, request_submit
from tests.reliability.processes import (
    require_services,
    service_env,
    start_worker,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SCAN, WORKERS, SECONDS = 50, 2, 120


@pytest.fixture
def sleepy(transactional_db: None) -> Analysis:
    analysis, _, _ = analysis_load(loader.read_entry(WORKFLOWS / "sleepy", WORKFLOWS))
    return analysis


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path) -> Iterator[None]:
    require_services()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = service_env(settings.CELERY_BROKER_URL)
    env.update(
        RECAST_STEP_CACHE_DIR=str(tmp_path / "cache"),
        RECAST_SCAN_SLOTS=str(WORKERS),
    )
    process = start_worker(env, tmp_path / "worker.log", WORKERS)
    yield
    stop(process)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def submit(analysis: Analysis, owner: User, count: int) -> Request:
    points = [
        check_point(analysis, {"seconds": 0, "fill_kb": 0}, name=f"p{i:02d}")
        for i in range(count)
    ]
    return request_submit(analysis, points, owner=owner, use_cache=False)


def wait_until_done(scan: Request, single: Request) -> None:
    """Until the single point and ten of the scan's have finished."""
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        done = Run.objects.filter(status__in=FINISHED)
        if (
            done.filter(request=single).exists()
            and done.filter(request=scan).count() >= 10
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"eleven points did not finish within {SECONDS} s")


def test_a_single_point_after_a_long_scan_finishes_before_its_tenth_point(
    sleepy: Analysis, workers: None
) -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")

    scan = submit(sleepy, alice, SCAN)
    single = submit(sleepy, bob, 1)
    wait_until_done(scan, single)
    # The rest of the scan would only show what the first ten showed.
    request_cancel(scan)
    done = Run.objects.exclude(finished_at=None).exclude(status="cancelled")
    order = list(done.order_by("finished_at"))
    scans = [run for run in order if run.request_id == scan.id]
    [bobs] = [run for run in order if run.request_id == single.id]

    assert {run.status for run in order} == {"succeeded"}
    assert len(scans) >= 10
    assert bobs.finished_at is not None and scans[9].finished_at is not None
    assert bobs.finished_at < scans[9].finished_at
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fair_share.json").write_text(
        json.dumps(
            {
                "scan_points": SCAN,
                "workers": WORKERS,
                "single_point_finished_as": order.index(bobs) + 1,
                "seconds_to_tenth": (
                    scans[9].finished_at - scan.submitted_at
                ).total_seconds(),
            },
            indent=1,
        )
        + "\n"
    )
