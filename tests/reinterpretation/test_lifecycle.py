"""Runs move by conditional updates: one worker at a time, a dead worker's run
is taken over, and a stale attempt can record nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.core.errors import Conflict
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Run
from recast.reinterpretation.services import (
    request_submit,
    run_fail,
    run_heartbeat,
    run_start,
    run_succeed,
    runs_requeue_stale,
)


@pytest.fixture
def run(demo: Analysis) -> Run:
    request = request_submit(
        demo, [check_point(demo, {"patch": "stop_450_0"})], enqueue_runs=False
    )
    return request.runs.get()


def silence(run: Run, seconds: int) -> None:
    Run.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_only_one_worker_starts_a_queued_run(run: Run) -> None:
    assert run_start(str(run.id), "local") == 1
    assert run_start(str(run.id), "local") is None


def test_a_run_whose_worker_went_silent_is_taken_over(run: Run, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RECAST_RUN_LEASE = 60
    run_start(str(run.id), "local")
    silence(run, 61)

    assert run_start(str(run.id), "local") == 2
    assert not run_heartbeat(str(run.id), 1)
    assert run_heartbeat(str(run.id), 2)


def test_a_run_with_a_live_worker_is_not_taken_over(run: Run, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RECAST_RUN_LEASE = 60
    run_start(str(run.id), "local")
    silence(run, 30)

    assert run_start(str(run.id), "local") is None


def test_a_stale_attempt_records_nothing(run: Run, settings) -> None:  # type: ignore[no-untyped-def]
    settings.RECAST_RUN_LEASE = 60
    run_start(str(run.id), "local")
    silence(run, 61)
    run_start(str(run.id), "local")

    with pytest.raises(Conflict, match="attempt 1 no longer holds the run"):
        run_succeed(str(run.id), 1, {}, "/nowhere", "0" * 64)
    run_fail(str(run.id), 1, "late failure")

    run.refresh_from_db()
    assert (run.status, run.attempts, run.error, run.result) == ("running", 2, "", None)


def test_a_finished_run_is_never_started_again(run: Run) -> None:
    run_start(str(run.id), "local")
    run_fail(str(run.id), 1, "broken")

    assert run_start(str(run.id), "local") is None


def test_the_sweeper_hands_out_silent_and_long_waiting_runs_again(
    demo: Analysis,
    settings,
    queued: list[str],  # type: ignore[no-untyped-def]
) -> None:
    settings.RECAST_RUN_LEASE, settings.RECAST_REQUEUE_AFTER = 60, 600
    points = [
        check_point(demo, {"patch": n})
        for n in ("stop_450_0", "stop_550_0", "stop_650_0", "stop_750_0")
    ]
    runs = {
        r.point: r for r in request_submit(demo, points, enqueue_runs=False).runs.all()
    }
    for name in ("stop_450_0", "stop_550_0"):
        run_start(str(runs[name].id), "local")
    silence(runs["stop_450_0"], 61)  # its worker died
    long_ago = timezone.now() - timedelta(seconds=601)
    Run.objects.filter(id=runs["stop_650_0"].id).update(queued_at=long_ago)
    # Nothing claimed for as long: the broker may have lost its pulls.
    Run.objects.update(started_at=long_ago)

    handed = runs_requeue_stale()

    assert sorted(handed) == sorted(
        [str(runs["stop_450_0"].id), str(runs["stop_650_0"].id)]
    )
    assert sorted(queued) == sorted(handed)


def test_a_long_waiting_run_waits_its_turn_while_workers_claim(
    demo: Analysis,
    settings,
    queued: list[str],  # type: ignore[no-untyped-def]
) -> None:
    settings.RECAST_REQUEUE_AFTER = 600
    points = [check_point(demo, {"patch": n}) for n in ("stop_450_0", "stop_550_0")]
    request = request_submit(demo, points, enqueue_runs=False)
    busy, waiting = request.runs.order_by("point")
    Run.objects.filter(id=waiting.id).update(
        queued_at=timezone.now() - timedelta(seconds=601)
    )
    run_start(str(busy.id), "local")

    assert runs_requeue_stale() == []
    assert queued == []
