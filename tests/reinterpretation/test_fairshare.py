"""The chooser of the next fair batch: the owner with the fewest running points
first, then whoever has waited longest; that owner's oldest request, in point
order; the running limit at claim; batches small while others wait; and two
claimers at once never sharing a run (no workflow runs here)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.utils import timezone

from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.quotas.models import Deferral
from recast.quotas.services import quota_set
from recast.reinterpretation.dispatch import batch_plan, pulls_for
from recast.reinterpretation.fairshare import batch_claim
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Run
from recast.reinterpretation.services import request_submit

SLEEPY = Path(__file__).resolve().parents[1] / "reliability" / "workflows"
NAMES = ["stop_450_0", "stop_450_100", "stop_450_200", "stop_550_0", "stop_550_100"]


@pytest.fixture
def sleepy(db: None) -> Analysis:
    """A workflow that declares no batch: one point per execution."""
    entry = loader.read_entry(SLEEPY / "sleepy", SLEEPY)
    analysis, _, _ = analysis_load(entry)
    return analysis


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob")


def scan(analysis: Analysis, owner: User | None, count: int) -> Request:
    points = [
        check_point(analysis, {"seconds": 0, "fill_kb": 0}, name=f"p{i:02d}")
        for i in range(count)
    ]
    return request_submit(analysis, points, owner=owner, enqueue_runs=False)


def patches(demo: Analysis, owner: User | None, names: list[str]) -> Request:
    points = [check_point(demo, {"patch": name}) for name in names]
    return request_submit(demo, points, owner=owner, enqueue_runs=False)


def claimed(run_ids: list[str]) -> list[tuple[str, str]]:
    """(owner, point) of each claimed run, in the order claimed."""
    runs = Run.objects.select_related("request__owner").filter(id__in=run_ids)
    by_id = {str(run.id): run for run in runs}
    return [(by_id[i].request.owner.username, by_id[i].point) for i in run_ids]


def test_the_owner_with_fewest_running_points_goes_first(
    sleepy: Analysis, alice: User, bob: User
) -> None:
    scan(sleepy, alice, 50)
    first = batch_claim("local")
    scan(sleepy, bob, 1)

    assert claimed(first) == [("alice", "p00")]
    assert claimed(batch_claim("local")) == [("bob", "p00")]
    assert claimed(batch_claim("local")) == [("alice", "p01")]


def test_a_tie_goes_to_the_owner_who_has_waited_longest(
    sleepy: Analysis, alice: User, bob: User
) -> None:
    scan(sleepy, bob, 2)
    scan(sleepy, alice, 2)

    order = [claimed(batch_claim("local"))[0] for _ in range(4)]

    assert order == [
        ("bob", "p00"),
        ("alice", "p00"),
        ("bob", "p01"),
        ("alice", "p01"),
    ]


def test_an_owner_gets_their_oldest_request_first_in_point_order(
    sleepy: Analysis, alice: User
) -> None:
    older = scan(sleepy, alice, 2)
    scan(sleepy, alice, 2)
    Run.objects.filter(request=older).update(submitted_at=timezone.now())

    run_ids = [batch_claim("local")[0] for _ in range(2)]

    assert {Run.objects.get(id=i).request_id for i in run_ids} == {older.id}
    assert claimed(run_ids) == [("alice", "p00"), ("alice", "p01")]
    older.refresh_from_db()
    assert older.status == "running"


def test_an_owner_at_their_running_limit_is_passed_over_at_claim(
    sleepy: Analysis, alice: User, bob: User
) -> None:
    quota_set(alice, {"max_running": 1})
    scan(sleepy, alice, 3)
    assert claimed(batch_claim("local")) == [("alice", "p00")]

    assert batch_claim("local") == []
    scan(sleepy, bob, 1)
    assert claimed(batch_claim("local")) == [("bob", "p00")]
    assert Run.objects.filter(request__owner=alice, status="running").count() == 1
    # Her next point waits for a slot; the end of her running one releases it.
    [deferred] = Deferral.objects.values_list("run__point", "run__request__owner")
    assert deferred == ("p01", alice.id)


def test_a_batch_never_takes_an_owner_past_their_running_limit(
    demo: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_SCAN_SLOTS = 1
    quota_set(alice, {"max_running": 3})
    patches(demo, alice, NAMES)

    assert len(batch_claim("local")) == 3
    assert batch_claim("local") == []


def test_an_owner_alone_gets_full_batches_and_small_ones_while_others_wait(
    demo: Analysis, alice: User, bob: User, settings: Any
) -> None:
    settings.RECAST_SCAN_SLOTS = 1
    settings.RECAST_BATCH_MAX = 8
    settings.RECAST_BATCH_MAX_SHARED = 2
    grid = [f"stop_{m}_{lsp}" for m in (450, 550, 650, 750) for lsp in (0, 100, 200)]
    patches(demo, alice, grid[:12])

    alone = batch_claim("local")
    patches(demo, bob, grid[:6])
    shared = [batch_claim("local") for _ in range(4)]

    # Half of the scan for the one slot: six of twelve.
    assert claimed(alone) == [("alice", name) for name in grid[:6]]
    # Bob has the fewest running until his last point is out; his batches
    # are cut to two (he alone would get three, half of his six).
    assert [claimed(b) for b in shared[:3]] == [
        [("bob", grid[0]), ("bob", grid[1])],
        [("bob", grid[2]), ("bob", grid[3])],
        [("bob", grid[4]), ("bob", grid[5])],
    ]
    # Alice is alone again, and her batches are still sized from her whole
    # scan: the six points left, not half of them (a scan's tail cut ever
    # smaller would pay each step's start again and again).
    assert claimed(shared[3]) == [("alice", name) for name in grid[6:12]]
    assert batch_claim("local") == []


def test_a_point_silent_past_its_lease_is_taken_over_as_a_new_attempt(
    sleepy: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_RUN_LEASE = 60
    scan(sleepy, alice, 1)
    [run_id] = batch_claim("local")
    assert batch_claim("local") == []

    Run.objects.filter(id=run_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=61)
    )

    assert batch_claim("local") == [run_id]
    assert Run.objects.get(id=run_id).attempts == 2


def test_a_claim_is_restricted_to_the_runs_it_is_given(
    sleepy: Analysis, alice: User, bob: User
) -> None:
    scan(sleepy, alice, 2)
    mine = [str(r.id) for r in scan(sleepy, bob, 2).runs.all()]

    assert claimed(batch_claim("local", mine)) == [("bob", "p00")]


def test_a_scan_gets_one_pull_per_batch_at_most_twice_the_slots(
    sleepy: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_SCAN_SLOTS = 2
    three = [str(r.id) for r in scan(sleepy, alice, 3).runs.all()]
    fifty = [str(r.id) for r in scan(sleepy, alice, 50).runs.all()]

    assert (pulls_for(three), pulls_for(fifty)) == (3, 4)


def test_planned_batches_are_cut_at_the_batch_limit(
    demo: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_SCAN_SLOTS = 1
    settings.RECAST_BATCH_MAX = 2
    run_ids = [str(r.id) for r in patches(demo, alice, NAMES).runs.order_by("point")]

    assert batch_plan(run_ids) == [run_ids[0:2], run_ids[2:4], run_ids[4:]]


@pytest.mark.django_db(transaction=True)
def test_two_claimers_at_once_never_take_the_same_run(
    sleepy: Analysis, alice: User, bob: User
) -> None:
    if connection.vendor != "postgresql":
        if os.environ.get("RECAST_REQUIRE_SERVICES") == "1":
            pytest.fail("RECAST_REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL")
        pytest.skip("row locks (SKIP LOCKED) need PostgreSQL")
    quota_set(bob, {"max_running": 5})
    for owner in (alice, bob):
        scan(sleepy, owner, 30)
    start = threading.Barrier(6)

    def claim_all(_: int) -> list[str]:
        start.wait()
        mine = []
        try:
            while taken := batch_claim("local"):
                mine += taken
        finally:
            close_old_connections()
        return mine

    with ThreadPoolExecutor(6) as claimers:
        takes = list(claimers.map(claim_all, range(6)))

    everything = [run_id for take in takes for run_id in take]
    assert len(everything) == len(set(everything)) == 35
    assert sum(len(take) > 0 for take in takes) > 1
    assert set(Run.objects.values_list("attempts", flat=True)) == {0, 1}
    assert Run.objects.filter(request__owner=bob, status="running").count() == 5
