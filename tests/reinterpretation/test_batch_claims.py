"""A batch task claims its runs one by one, keeps their leases, and reads each
point's result on its own (no workflow runs here)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.engine.events import StepEvent
from recast.engine.runner import Outcome
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Run
from recast.reinterpretation.services import (
    request_submit,
    run_mark_cancelled,
    run_start,
    runs_heartbeat,
)
from tests.conftest import DEMO, WORKFLOWS

NAMES = ("stop_450_0", "stop_550_0", "stop_650_0")


@pytest.fixture
def run_ids(demo: Analysis) -> list[str]:
    points = [check_point(demo, {"patch": name}) for name in NAMES]
    request = request_submit(demo, points, enqueue_runs=False)
    return [str(i) for i in request.runs.order_by("point").values_list("id", flat=True)]


def silence(run_id: str, seconds: int) -> None:
    Run.objects.filter(id=run_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.django_db
def test_a_redelivered_batch_takes_over_only_its_silent_runs(
    run_ids: list[str], settings: Any
) -> None:
    settings.RECAST_RUN_LEASE = 60
    for run_id in run_ids:
        run_start(run_id, "local")
    silence(run_ids[0], 61)
    silence(run_ids[1], 61)

    claims, others = execution.claim_runs(run_ids)

    assert [(c.run_id, c.attempt) for c in claims] == [
        (run_ids[0], 2),
        (run_ids[1], 2),
    ]
    assert others == {run_ids[2]: "running"}


@pytest.mark.django_db
def test_a_batch_claims_nothing_of_what_finished_or_was_cancelled(
    run_ids: list[str],
) -> None:
    run_mark_cancelled(run_ids[0])
    execution.claim_runs(run_ids[1:2])

    claims, others = execution.claim_runs(run_ids)

    assert [c.run_id for c in claims] == [run_ids[2]]
    assert others == {run_ids[0]: "cancelled", run_ids[1]: "running"}


@pytest.mark.django_db
def test_the_heartbeat_of_a_batch_drops_a_cancelled_point_and_keeps_the_others(
    run_ids: list[str],
) -> None:
    held = {run_id: run_start(run_id, "local") or 0 for run_id in run_ids}
    run_mark_cancelled(run_ids[1])

    assert runs_heartbeat(held) == {run_ids[0], run_ids[2]}


def results_outcome(tmp_path: Path) -> Outcome:
    """What the summarise step of a two-point batch published: one point
    fitted, the other flagged as a failed fit."""
    reference = json.loads((WORKFLOWS / DEMO / "reference.json").read_text())
    good = {**reference, "point": "stop_650_0"}
    bad = {
        **good,
        "point": "stop_450_0",
        "fit": {"status": "failed", "message": "the fit did not converge"},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [good, bad]}))
    event = StepEvent("finished", "summarise", outputs={"results": str(path)})
    return Outcome("succeeded", steps=[event])


@pytest.mark.django_db
def test_a_point_whose_fit_failed_fails_alone(
    run_ids: list[str], tmp_path: Path
) -> None:
    outcome = results_outcome(tmp_path)
    runs = {run.point: run for run in Run.objects.filter(id__in=run_ids)}

    bad, bad_result = execution.point_outcome(
        execution.Claim(runs["stop_450_0"], 1), outcome
    )
    good, good_result = execution.point_outcome(
        execution.Claim(runs["stop_650_0"], 1), outcome
    )

    assert (bad.status, bad.reason, bad.failed_step) == (
        "failed",
        "fit failed: the fit did not converge",
        "fit",
    )
    assert bad_result is not None and bad_result["fit"]["status"] == "failed"
    assert (good.status, good.reason) == ("succeeded", "")
    assert good_result is not None and good_result["point"] == "stop_650_0"
    assert outcome.status == "succeeded"
