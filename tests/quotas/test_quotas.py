"""Limits per user or group, the queued-points and CPU checks at submit, and
the running limit at claim time: a run past it stays queued and is handed out
again when a slot frees; two submits of one user at once go one after the
other."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.core.errors import QuotaExceeded
from recast.engine.events import StepEvent
from recast.quotas import services as quota_services
from recast.quotas.models import CpuUsage, Deferral
from recast.quotas.selectors import limits_for, usage_for
from recast.quotas.services import quota_set, runs_release_all, submit_check
from recast.reinterpretation.idempotency import request_accept
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request
from recast.reinterpretation.services import (
    request_cancel,
    request_submit,
    run_fail,
    run_start,
    step_record,
)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice")


def submit(demo: Analysis, owner: User, patches: list[str]) -> Request:
    points = [check_point(demo, {"patch": name}) for name in patches]
    return request_submit(demo, points, owner=owner, enqueue_runs=False)


def test_a_limit_comes_from_the_user_else_the_most_generous_group_else_settings(
    alice: User, settings: Any
) -> None:
    settings.RECAST_QUOTA_RUNNING = 2
    settings.RECAST_QUOTA_QUEUED = 50
    small, large = Group.objects.create(name="small"), Group.objects.create(name="l")
    alice.groups.add(small, large)
    quota_set(small, {"max_queued": 10, "cpu_seconds_month": 3600})
    quota_set(large, {"max_queued": 500, "cpu_seconds_month": 0})
    quota_set(alice, {"max_queued": 20})

    limits = limits_for(alice)

    assert (limits.max_running, limits.max_queued, limits.cpu_seconds_month) == (
        2,
        20,
        0,
    )
    assert limits.as_dict() == {
        "max_running": 2,
        "max_queued": 20,
        "cpu_seconds_month": None,
    }


def test_a_request_past_the_queued_limit_is_refused_naming_limit_and_usage(
    demo: Analysis, alice: User
) -> None:
    quota_set(alice, {"max_queued": 3})
    submit(demo, alice, ["stop_450_0", "stop_550_0"])

    with pytest.raises(QuotaExceeded) as refused:
        submit_check(alice, 2)

    assert refused.value.message == (
        "this request has 2 points; your limit on queued points is 3 and 2 are queued"
    )
    assert (refused.value.code, refused.value.status) == ("quota_exceeded", 429)
    submit_check(alice, 1)


def test_a_spent_cpu_budget_refuses_new_requests_until_next_month(
    demo: Analysis, alice: User
) -> None:
    quota_set(alice, {"cpu_seconds_month": 100})
    run = submit(demo, alice, ["stop_450_0"]).runs.get()
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    step_record(str(run.id), attempt, StepEvent("finished", "fit", cpu_seconds=60.5))
    submit_check(alice, 1)
    step_record(str(run.id), attempt, StepEvent("failed", "plot", cpu_seconds=39.5))

    with pytest.raises(QuotaExceeded) as refused:
        submit_check(alice, 1)

    assert refused.value.message == (
        "your monthly CPU-time budget is 100 s and 100 s are used this month"
    )

    CpuUsage.objects.update(recorded_at=timezone.now() - timedelta(days=32))
    submit_check(alice, 1)


def test_usage_counts_points_by_state_and_cpu_seconds_this_month(
    demo: Analysis, alice: User
) -> None:
    request = submit(demo, alice, ["stop_450_0", "stop_550_0", "stop_650_0"])
    run = request.runs.get(point="stop_450_0")
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    step_record(str(run.id), attempt, StepEvent("started", "fit"))
    step_record(str(run.id), attempt, StepEvent("finished", "fit", cpu_seconds=2.5))

    usage = usage_for(alice)

    assert usage["running"] == 1
    assert usage["queued"] == 2
    assert usage["cpu_seconds"] == 2.5
    assert usage["month"] == timezone.now().strftime("%Y-%m")


def test_a_run_past_the_running_limit_stays_queued_and_is_released_later(
    demo: Analysis,
    alice: User,
    queued: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    quota_set(alice, {"max_running": 1})
    request = submit(demo, alice, ["stop_450_0", "stop_550_0"])
    first, second = request.runs.order_by("point")
    assert run_start(str(first.id), "local") == 1

    assert run_start(str(second.id), "local") is None
    second.refresh_from_db()
    assert second.status == "queued"
    assert Deferral.objects.filter(run=second).exists()

    with django_capture_on_commit_callbacks(execute=True):
        run_fail(str(first.id), 1, "broken")

    assert queued == [str(second.id)]
    assert not Deferral.objects.exists()
    assert run_start(str(second.id), "local") == 1


def test_another_users_runs_are_not_held_back(demo: Analysis, alice: User) -> None:
    quota_set(alice, {"max_running": 1})
    bob = User.objects.create_user("bob")
    mine = submit(demo, alice, ["stop_450_0", "stop_550_0"]).runs.order_by("point")
    theirs = submit(demo, bob, ["stop_450_0"]).runs.get()
    run_start(str(mine[0].id), "local")

    assert run_start(str(theirs.id), "local") == 1


def test_the_sweeper_releases_runs_whose_slot_a_cancellation_freed(
    demo: Analysis, alice: User, queued: list[str]
) -> None:
    quota_set(alice, {"max_running": 1})
    busy = submit(demo, alice, ["stop_450_0"])
    waiting = submit(demo, alice, ["stop_550_0"]).runs.get()
    run_start(str(busy.runs.get().id), "local")
    run_start(str(waiting.id), "local")
    assert runs_release_all() == []

    request_cancel(busy)

    assert runs_release_all() == [str(waiting.id)]
    assert queued == [str(waiting.id)]
    out = io.StringIO()
    call_command("quota_release", stdout=out)
    assert out.getvalue() == "0 waiting run(s) handed to the workers\n"


def test_staff_set_limits_with_a_management_command(alice: User) -> None:
    out = io.StringIO()
    call_command(
        "quota_set",
        "--user",
        "alice",
        "--max-running",
        "4",
        "--max-queued",
        "100",
        stdout=out,
    )
    assert json.loads(out.getvalue()) == {
        "max_running": 4,
        "max_queued": 100,
        "cpu_seconds_month": None,
    }

    out = io.StringIO()
    call_command("quota_set", "--user", "alice", "--max-running", "inherit", stdout=out)
    assert json.loads(out.getvalue())["max_running"] is None

    with pytest.raises(CommandError) as refused:
        call_command("quota_set", "--user", "zed", "--max-queued", "1")
    assert str(refused.value) == "no user 'zed'"


@pytest.mark.django_db(transaction=True)
def test_two_submits_at_once_cannot_both_pass_the_queued_limit(
    demo: Analysis, alice: User, queued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        if os.environ.get("RECAST_REQUIRE_SERVICES") == "1":
            pytest.fail("RECAST_REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL")
        pytest.skip("the per-user row lock needs PostgreSQL")
    quota_set(alice, {"max_queued": 3})
    count = quota_services.points_count

    def slow_count(owner: User, statuses: tuple[str, ...]) -> int:
        # Wide open between the count and the write: without the lock both
        # submits would count nothing queued and both be accepted.
        counted = count(owner, statuses)
        time.sleep(0.5)
        return counted

    monkeypatch.setattr(quota_services, "points_count", slow_count)
    points = [
        check_point(demo, {"patch": name}) for name in ("stop_450_0", "stop_550_0")
    ]
    start = threading.Barrier(2)

    def accept(_: int) -> str:
        start.wait()
        try:
            request_accept(demo, points, alice)
            return "accepted"
        except QuotaExceeded as refused:
            return refused.message
        finally:
            close_old_connections()

    with ThreadPoolExecutor(2) as submitters:
        answers = sorted(submitters.map(accept, range(2)))

    assert answers == [
        "accepted",
        "this request has 2 points; your limit on queued points is 3 and 2 are queued",
    ]
    assert Request.objects.filter(owner=alice).count() == 1
