"""A scan's points executed in batches: one workflow execution, each step once
in one process for every point of the batch, and every point still recorded
and archived as if it ran alone (slow: real fits)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import prov.model as prov
import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from rocrate.rocrate import ROCrate

from recast.archive.builder import archive_verify
from recast.archive.rerun import archive_rerun
from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.reinterpretation import execution, services
from recast.reinterpretation.inputs import PointInputs, check_point, sha256_ref
from recast.reinterpretation.models import Run, Status, Step
from recast.reinterpretation.services import request_submit, run_mark_cancelled
from tests.conftest import DEMO, WORKFLOWS

# Every test needs the database set up, even those reading the batch fixture.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]
POINTS = ("stop_450_0", "stop_650_100", "stop_850_300")
CANCELLED = "stop_850_300"
EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"


def run_rows(run_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = {}
    for run in Run.objects.filter(id__in=run_ids):
        rows[run.point] = {
            "id": str(run.id),
            "status": run.status,
            "attempts": run.attempts,
            "error": run.error,
            "result": run.result,
            "archive": run.archive_path,
            "steps": list(
                Step.objects.filter(run=run).values_list("name", "status", "command")
            ),
        }
    return rows


@pytest.fixture(scope="module")
def batch(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Three demo points run as one batch; one of them is cancelled while the
    fit step runs (as a user would, from another process). The batch is then
    handed out a second time. Rows are rolled back; the archives stay."""
    base = tmp_path_factory.getbasetemp() / "var"
    folders = {
        "RECAST_WORK_DIR": base / "work",
        "RECAST_ARCHIVE_DIR": base / "archive",
        "RECAST_UPLOAD_DIR": base / "uploads",
    }
    step_record = services.step_record

    def cancel_during_fit(run_id: str, attempt: int, event: Any) -> None:
        step_record(run_id, attempt, event)
        if event.name == "fit" and event.kind == "started":
            cancelled = Run.objects.filter(point=CANCELLED).values_list("id", flat=True)
            run_mark_cancelled(str(cancelled.get()))

    with (
        django_db_blocker.unblock(),
        override_settings(**folders),
        transaction.atomic(),
        pytest.MonkeyPatch.context() as patches,
    ):
        analysis, _, _ = analysis_load(loader.read_entry(WORKFLOWS / DEMO, WORKFLOWS))
        points = [check_point(analysis, {"patch": name}) for name in POINTS]
        request = request_submit(analysis, points, enqueue_runs=False)
        run_ids = [str(run.id) for run in request.runs.all()]
        patches.setattr(services, "step_record", cancel_during_fit)

        first = execution.runs_execute(run_ids)
        second = execution.runs_execute(run_ids)
        rows = run_rows(run_ids)
        request.refresh_from_db()
        summary = {"first": first, "second": second, "runs": rows}
        summary["request_status"] = request.status
        transaction.set_rollback(True)
    return summary


def record(batch: dict[str, Any], point: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        Path(batch["runs"][point]["archive"], "run.json").read_text()
    )
    return document


def test_a_batch_runs_each_step_once_for_all_its_points(
    batch: dict[str, Any],
) -> None:
    runs = batch["runs"]
    patch_commands = {
        point: next(c for name, _, c in runs[point]["steps"] if name == "patch")
        for point in POINTS
    }

    assert {p: r["status"] for p, r in runs.items()} == {
        "stop_450_0": "succeeded",
        "stop_650_100": "succeeded",
        "stop_850_300": "cancelled",
    }
    assert [s[:2] for s in runs["stop_450_0"]["steps"]] == [
        ("patch", "succeeded"),
        ("fit", "succeeded"),
        ("summarise", "succeeded"),
        ("plot", "succeeded"),
    ]
    # One command, naming every point's signal: the step ran once for all.
    assert len(set(patch_commands.values())) == 1
    assert all(f"inputs/{p}.json" in patch_commands[POINTS[0]] for p in POINTS)
    assert record(batch, "stop_450_0")["batch"]["points"] == list(POINTS)
    assert record(batch, "stop_450_0")["batch"]["init"] == {
        "bkgonly": "inputs/BkgOnly.json",
        "signals": [f"inputs/{point}.json" for point in POINTS],
        "limits": True,
    }
    assert (
        record(batch, "stop_450_0")["batch"]["id"]
        == (record(batch, "stop_650_100")["batch"]["id"])
    )


def test_a_cancelled_point_of_a_batch_is_not_recorded_as_succeeded(
    batch: dict[str, Any],
) -> None:
    cancelled = batch["runs"][CANCELLED]

    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == "cancelled on request"
    assert cancelled["result"] is None
    assert cancelled["archive"] == ""
    assert batch["first"][cancelled["id"]] == "cancelled"
    assert batch["request_status"] == "cancelled"


def test_a_batch_handed_out_twice_does_nothing_the_second_time(
    batch: dict[str, Any],
) -> None:
    runs = batch["runs"]

    assert batch["second"] == batch["first"]
    assert [runs[p]["attempts"] for p in POINTS] == [1, 1, 1]


def test_each_point_archive_holds_its_own_inputs_and_outputs_only(
    batch: dict[str, Any],
) -> None:
    archive = Path(batch["runs"]["stop_450_0"]["archive"])
    files = sorted(
        p.relative_to(archive).as_posix()
        for p in archive.rglob("*")
        if p.is_file() and p.parts[len(archive.parts)] in ("inputs", "outputs")
    )
    results = json.loads((archive / "outputs/summarise/results.json").read_text())
    fits = json.loads((archive / "outputs/fit/fits.json").read_text())

    assert archive_verify(archive) == []
    assert files == [
        "inputs/BkgOnly.json",
        "inputs/stop_450_0.json",
        "outputs/fit/fits.json",
        "outputs/fit/points/stop_450_0.json",
        "outputs/patch/patched.json",
        "outputs/patch/stop_450_0/workspace.json",
        "outputs/plot/stop_450_0.png",
        "outputs/summarise/results.json",
        "outputs/summarise/stop_450_0.json",
    ]
    assert [r["point"] for r in results["results"]] == ["stop_450_0"]
    assert [f["point"] for f in fits["fits"]] == ["stop_450_0"]
    assert record(batch, "stop_450_0")["init"] == {
        "bkgonly": "inputs/BkgOnly.json",
        "signals": ["inputs/stop_450_0.json"],
        "limits": True,
    }
    assert sorted(record(batch, "stop_450_0")["batch"]["sliced"]) == [
        "outputs/fit/fits.json",
        "outputs/patch/patched.json",
        "outputs/summarise/results.json",
    ]
    assert (archive / "logs" / "fit.log").exists()


def test_the_crate_and_prov_say_which_batch_and_points_shared_the_steps(
    batch: dict[str, Any],
) -> None:
    archive = Path(batch["runs"]["stop_650_100"]["archive"])
    batch_id = record(batch, "stop_650_100")["batch"]["id"]
    crate = ROCrate(archive)
    steps = {e.id: e for e in crate.get_by_type("CreateAction")}
    document = prov.ProvDocument.deserialize(archive / "provenance.json", format="json")
    activities = {str(r.identifier): r for r in document.get_records(prov.ProvActivity)}

    assert steps["#step-fit"]["disambiguatingDescription"] == (
        f"ran in batch {batch_id}: each step ran once, in one process, for 3 "
        "points, this one and stop_450_0, stop_850_300"
    )
    batch_activity = activities[f"recast:batch-{batch_id}"]
    assert set(batch_activity.get_attribute("recast:points")) == {
        "stop_450_0 stop_650_100 stop_850_300"
    }


def test_a_point_of_a_batch_reruns_alone_from_its_archive(
    batch: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(batch["runs"]["stop_650_100"]["archive"], copy)

    compared = archive_rerun(copy, Path(settings.RECAST_ENVS_DIR), tmp_path / "rerun")

    assert compared.status == "succeeded", compared.reason
    assert compared.deviations == {
        "cls_obs": 0.0,
        "cls_exp": 0.0,
        "mu_up_obs": 0.0,
        "mu_up_exp": 0.0,
    }


@pytest.mark.django_db
def test_a_bad_point_fails_alone_and_the_others_of_its_batch_succeed(
    demo: Analysis,
) -> None:
    signal = json.loads(EXAMPLE.read_text())
    signal["metadata"]["digests"] = {"sha256": "ab" * 32}
    # Built past the submit-time checks (which refuse it), as a signal from an
    # archive made elsewhere would be: the patch step must refuse it alone.
    content = json.dumps(signal).encode()
    bad = PointInputs(
        "elsewhere", {}, {"signal": sha256_ref(content)}, {"signal": content}
    )
    good = check_point(demo, {"patch": "stop_550_0"})
    request = request_submit(demo, [bad, good], enqueue_runs=False)

    statuses = execution.runs_execute([str(r.id) for r in request.runs.all()])
    runs = {run.point: run for run in request.runs.all()}

    assert sorted(statuses.values()) == [Status.FAILED, Status.SUCCEEDED]
    assert runs["stop_550_0"].status == Status.SUCCEEDED
    assert runs["stop_550_0"].result["point"] == "stop_550_0"
    assert runs["elsewhere"].status == Status.FAILED
    assert runs["elsewhere"].failed_step == "patch"
    assert runs["elsewhere"].error.endswith(
        "recast-pyhf patch: elsewhere.json: this patch was made for another "
        "workspace (sha256 abababababab..., this workspace is 1f340c8de870...)"
    )
    assert archive_verify(Path(runs["elsewhere"].archive_path)) == []
