"""The embedded server (`recast serve`, several processes, no broker): what
each process takes up as it starts, and what only the server's start does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.reinterpretation.dispatch import resume
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Run, Status
from recast.reinterpretation.services import request_submit, runs_interrupted_requeue

NAMES = ["stop_450_0", "stop_450_100", "stop_550_0", "stop_550_100"]


def four_runs(demo: Analysis) -> list[str]:
    """Queued, running (beating), running (silent past the lease), succeeded."""
    points = [check_point(demo, {"patch": name}) for name in NAMES]
    request = request_submit(demo, points, enqueue_runs=False)
    ids = [str(i) for i in request.runs.order_by("point").values_list("id", flat=True)]
    now = timezone.now()
    Run.objects.filter(id=ids[0]).update(status=Status.QUEUED)
    Run.objects.filter(id=ids[1]).update(status=Status.RUNNING, heartbeat_at=now)
    Run.objects.filter(id=ids[2]).update(
        status=Status.RUNNING, heartbeat_at=now - timedelta(hours=1)
    )
    Run.objects.filter(id=ids[3]).update(status=Status.SUCCEEDED)
    return ids


@pytest.mark.django_db
def test_a_starting_process_takes_up_queued_and_silent_runs_not_a_siblings_live_one(
    demo: Analysis, settings: Any, queued: list[str]
) -> None:
    settings.CELERY_BROKER_URL = ""
    settings.RECAST_INPROCESS_WORKERS = 2
    ids = four_runs(demo)

    resume()

    assert sorted(queued) == sorted([ids[0], ids[2]])
    assert Run.objects.get(id=ids[1]).status == Status.RUNNING


@pytest.mark.django_db
def test_the_servers_start_queues_again_every_run_left_running(
    demo: Analysis,
) -> None:
    ids = four_runs(demo)

    assert runs_interrupted_requeue() == 2

    statuses = dict(Run.objects.values_list("id", "status"))
    assert [statuses[Run.objects.get(id=i).id] for i in ids] == [
        Status.QUEUED,
        Status.QUEUED,
        Status.QUEUED,
        Status.SUCCEEDED,
    ]


@pytest.mark.django_db
def test_a_process_with_a_broker_takes_up_nothing(
    demo: Analysis, settings: Any, queued: list[str]
) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.RECAST_INPROCESS_WORKERS = 2
    four_runs(demo)

    resume()

    assert queued == []
