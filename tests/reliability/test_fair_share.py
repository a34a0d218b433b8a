"""Fair dispatch with real Celery worker processes on Redis: a user's single
point, submitted once another user's 50-point scan keeps every worker busy,
finishes before the scan's tenth point (first come, first served, it would
finish last).

Two test analyses (tests/reliability/workflows), on two worker processes:
`sleepy`, one point per execution (two shell steps, a second's sleep a
point), and `sleepy-batch`, whose one step takes a whole batch of points
(two seconds each). The workers use the test database (PostgreSQL) and the
configured Redis broker, which the test empties first. Skipped without them,
unless RECAST_REQUIRE_SERVICES=1 makes that an error. Figures go to
tests/artifacts/fair_share.json."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
from tests.conftest import REPO
from tests.reliability.processes import (
    figures_record,
    require_services,
    service_env,
    start_worker,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.services]
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
SCAN, WORKERS, SECONDS = 50, 2, 120
# Batched: at most four points a batch, so that the two batches running when
# the single point arrives hold eight of the scan's points, not its tenth.
BATCH_MAX = 4


@pytest.fixture(params=["sleepy", "sleepy-batch"])
def analysis(request: pytest.FixtureRequest, transactional_db: None) -> Analysis:
    # The batched entry borrows the demo's likelihood: it loads from the
    # repository's root so that its paths stay inside the loaded folder.
    entry = loader.read_entry(WORKFLOWS / request.param, REPO)
    loaded, _, _ = analysis_load(entry)
    return loaded


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path) -> Iterator[None]:
    require_services()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = service_env(settings.CELERY_BROKER_URL)
    env.update(
        RECAST_STEP_CACHE_DIR=str(tmp_path / "cache"),
        RECAST_SCAN_SLOTS=str(WORKERS),
        RECAST_BATCH_MAX=str(BATCH_MAX),
    )
    process = start_worker(env, tmp_path / "worker.log", WORKERS)
    yield
    stop(process)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def submit(analysis: Analysis, owner: User, count: int) -> Request:
    inputs = (
        {"patch": "stop_450_0"}
        if analysis.kind == Analysis.Kind.PUBLIC_LIKELIHOOD
        # A second a point, two seconds in a batch: long enough that the
        # test's own submit of the single point, on a loaded machine, still
        # comes while the scan's first points run.
        else {"seconds": 1, "fill_kb": 0}
    )
    points = [check_point(analysis, inputs, name=f"p{i:02d}") for i in range(count)]
    return request_submit(analysis, points, owner=owner, use_cache=False)


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {SECONDS} s")


def done_enough(scan: Request, single: Request) -> bool:
    """The single point and ten of the scan's have finished."""
    done = Run.objects.filter(status__in=FINISHED)
    return (
        done.filter(request=single).exists() and done.filter(request=scan).count() >= 10
    )


def batch_size(run: Run) -> int:
    batch = json.loads(Path(run.archive_path, "run.json").read_text()).get("batch")
    return int(batch["size"]) if batch else 1


def record(name: str, figures: dict[str, Any]) -> None:
    figures_record("fair_share.json", name, figures)


def test_a_single_point_after_a_long_scan_finishes_before_its_tenth_point(
    analysis: Analysis, workers: None
) -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")

    scan = submit(analysis, alice, SCAN)
    # Bob comes once the scan runs: the workers are busy with its batches.
    wait_for(lambda: scan.runs.filter(status="running").exists(), "the scan running")
    single = submit(analysis, bob, 1)
    wait_for(lambda: done_enough(scan, single), "eleven points finished")
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
    sizes = sorted({batch_size(run) for run in scans})
    if analysis.current_workflow().batch:
        # Alice alone got full batches; Bob's point did not wait for one.
        assert max(sizes) == BATCH_MAX
    else:
        assert sizes == [1]
    record(
        analysis.slug,
        {
            "scan_points": SCAN,
            "workers": WORKERS,
            "scan_batch_sizes": sizes,
            "single_point_finished_as": order.index(bobs) + 1,
            "seconds_to_tenth": round(
                (scans[9].finished_at - scan.submitted_at).total_seconds(), 1
            ),
        },
    )
