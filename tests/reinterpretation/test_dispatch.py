"""How a request's runs are cut into batches before they are handed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.reinterpretation.dispatch import batch_plan, batch_size, batches_of
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.services import request_submit
from tests.conftest import DEMO

NAMES = [f"stop_{stop}_{lsp}" for stop in (450, 550, 650) for lsp in (0, 100, 200)]


@pytest.mark.parametrize(
    ("points", "slots", "max_points", "size"),
    [
        (1, 2, 64, 1),  # a single point runs alone, as it always did
        (3, 1, 64, 2),
        (125, 2, 64, 32),  # four batches for two slots
        (125, 16, 64, 4),
        (10000, 2, 64, 64),  # never more than the workflow accepts
    ],
)
def test_a_scan_is_cut_into_twice_as_many_batches_as_slots(
    points: int, slots: int, max_points: int, size: int
) -> None:
    assert batch_size(points, slots, max_points) == size


def submitted(analysis: Analysis, names: list[str]) -> list[str]:
    points = [check_point(analysis, {"patch": name}) for name in names]
    request = request_submit(analysis, points, enqueue_runs=False)
    return [str(i) for i in request.runs.order_by("point").values_list("id", flat=True)]


@pytest.mark.django_db
def test_a_batched_workflow_gets_its_runs_in_point_order_batches(
    demo: Analysis, settings: Any
) -> None:
    settings.RECAST_SCAN_SLOTS = 2
    run_ids = submitted(demo, NAMES)

    plan = batch_plan(list(reversed(run_ids)))

    assert plan == [run_ids[0:3], run_ids[3:6], run_ids[6:9]]


@pytest.mark.django_db
def test_each_request_is_batched_on_its_own(demo: Analysis, settings: Any) -> None:
    settings.RECAST_SCAN_SLOTS = 1
    first = submitted(demo, NAMES[:4])
    second = submitted(demo, NAMES[:4])

    plan = batch_plan(first + second)

    assert sorted(plan) == sorted([first[:2], first[2:], second[:2], second[2:]])


@pytest.mark.django_db
def test_a_workflow_that_declares_no_batch_gets_one_execution_per_run(
    workflows_copy: Path, settings: Any
) -> None:
    entry = workflows_copy / DEMO / "recast.yml"
    document = yaml.safe_load(entry.read_text())
    del document["workflow"]["batch"]
    entry.write_text(yaml.safe_dump(document))
    entry_read = loader.read_entry(entry.parent, workflows_copy)
    analysis, version, _ = analysis_load(entry_read)
    settings.RECAST_SCAN_SLOTS = 1

    run_ids = submitted(analysis, NAMES[:3])

    assert version.batch == {}
    assert batch_plan(run_ids) == [[run_id] for run_id in run_ids]


@pytest.mark.django_db
@pytest.mark.parametrize(("points", "slots"), [(1, 2), (4, 1), (9, 2), (9, 16)])
def test_a_submit_counts_the_batches_its_runs_make_as_the_plan_does(
    demo: Analysis, settings: Any, points: int, slots: int
) -> None:
    settings.RECAST_SCAN_SLOTS = slots
    run_ids = submitted(demo, NAMES[:points])

    batch = demo.current_workflow().batch

    assert batches_of(points, batch) == len(batch_plan(run_ids))
    assert batches_of(points, {}) == points


@pytest.mark.django_db
def test_a_submit_hands_its_batches_to_the_dispatcher_once_committed(
    demo: Analysis,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.RECAST_SCAN_SLOTS = 2
    handed: list[tuple[list[str], int | None]] = []
    monkeypatch.setattr(
        "recast.reinterpretation.dispatch.dispatch",
        lambda run_ids, batches=None: handed.append((run_ids, batches)),
    )
    points = [check_point(demo, {"patch": name}) for name in NAMES]

    with django_capture_on_commit_callbacks(execute=True):
        request = request_submit(demo, points)

    ids = sorted(str(i) for i in request.runs.values_list("id", flat=True))
    assert [(sorted(run_ids), batches) for run_ids, batches in handed] == [(ids, 3)]
