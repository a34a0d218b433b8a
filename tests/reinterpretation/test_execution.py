"""Whole runs of the demo analysis on the local backend (slow: real fits)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import prov.model as prov
import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from rocrate.rocrate import ROCrate

from recast.archive.builder import archive_verify, manifest_of
from recast.archive.rerun import archive_rerun
from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.engine import environments
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import PointInputs, check_point, sha256_ref
from recast.reinterpretation.local import run_locally
from recast.reinterpretation.models import Run, Status, Step
from recast.reinterpretation.services import request_submit, run_mark_cancelled
from tests.conftest import DEMO, WORKFLOWS

pytestmark = pytest.mark.slow
EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"


def direct_pyhf(bkgonly: Path, signal: Path) -> dict[str, Any]:
    image = Analysis.objects.get(slug=DEMO).current_workflow().images[0]
    venv, _ = environments.ensure(Path(settings.RECAST_ENVS_DIR), image)
    script = Path(__file__).with_name("direct_pyhf.py")
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(script), str(bkgonly), str(signal)],
        capture_output=True,
        text=True,
        check=True,
        env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def signal_run(analysis: Analysis, signal: dict[str, Any], name: str) -> Run:
    """Run a signal that skipped the submit-time checks (as a signal in an
    archive made elsewhere would): the steps must refuse it on their own."""
    content = json.dumps(signal).encode()
    point = PointInputs(name, {}, {"signal": sha256_ref(content)}, {"signal": content})
    request = request_submit(analysis, [point], enqueue_runs=False)
    run = request.runs.get()
    execution.run_execute(str(run.id))
    run.refresh_from_db()
    return run


def example_signal() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return document


@pytest.fixture(scope="module")
def example(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The demo's example, run once for the tests that read only its numbers
    and its archive; the database rows are rolled back, the archive stays."""
    base = tmp_path_factory.getbasetemp() / "var"
    folders = {
        "RECAST_WORK_DIR": base / "work",
        "RECAST_ARCHIVE_DIR": base / "archive",
        "RECAST_UPLOAD_DIR": base / "uploads",
        "RECAST_STEP_CACHE_DIR": base / "example-step-cache",
    }
    blocker = django_db_blocker.unblock()
    with blocker, override_settings(**folders), transaction.atomic():
        analysis_load(loader.read_entry(WORKFLOWS / DEMO, WORKFLOWS))
        summary = run_locally(DEMO, example=True)
        transaction.set_rollback(True)
    return summary


def test_the_example_equals_a_direct_pyhf_computation(
    example: dict[str, Any], demo: Analysis
) -> None:
    summary = example
    expected = direct_pyhf(WORKFLOWS / DEMO / "data" / "BkgOnly.json", EXAMPLE)

    assert summary["status"] == "succeeded", summary["error"]
    assert summary["fit_status"] == "ok"
    # pyhf's fits stop at SLSQP's tolerance, the fit step's (inside XLA) a little
    # closer to the minimum, and pyhf's numpy backend fits without gradients:
    # their CLs agree to 1e-5 of their value or 1e-6
    # (tests/workflows/test_pyhf_fitting.py).
    for key in ("cls_obs", "cls_exp"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    # The fit step locates each limit to relative 1e-4 (toms748 rtol).
    for key in ("mu_up_obs", "mu_up_exp"):
        assert summary[key] == pytest.approx(expected[key], rel=2e-4), key


@pytest.mark.django_db
def test_a_finished_run_is_archived_and_never_runs_again(demo: Analysis) -> None:
    summary = run_locally(DEMO, patch="stop_850_0")
    run = Run.objects.get(id=summary["run"])
    archive = Path(run.archive_path)
    provenance = json.loads((archive / "run.json").read_text())

    assert run.status == Status.SUCCEEDED
    assert run.model_parameters == {"m_stop": 850, "m_lsp": 0}
    assert list(
        Step.objects.filter(run=run).values_list("name", "status", "exit_code")
    ) == [
        ("patch", "succeeded", 0),
        ("fit", "succeeded", 0),
        ("summarise", "succeeded", 0),
        ("plot", "succeeded", 0),
    ]
    assert archive_verify(archive) == []
    assert (archive / "outputs" / "plot" / "stop_850_0.png").stat().st_size > 10_000
    assert (archive / "yadage" / "yadage_snapshot_workflow.json").exists()
    assert provenance["workflow"]["digest"] == demo.current_workflow().digest
    assert any(
        p.startswith("pyhf==0.7.6")
        for p in provenance["steps"][0]["environment"]["packages"]
    )
    assert json.loads((archive / "result.json").read_text()) == run.result
    assert execution.run_execute(summary["run"]) == "succeeded"
    assert Run.objects.get(id=summary["run"]).attempts == 1


def test_the_archive_is_a_workflow_run_crate_with_a_prov_document(
    example: dict[str, Any],
) -> None:
    summary = example
    archive = Path(summary["archive"])

    crate = ROCrate(archive)
    profiles = {p.id for p in crate.root_dataset["conformsTo"]}
    steps = {e.id: e for e in crate.get_by_type("CreateAction")}
    document = prov.ProvDocument.deserialize(archive / "provenance.json", format="json")
    activities = {str(r.identifier) for r in document.get_records(prov.ProvActivity)}

    assert {
        "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5",
    } <= profiles
    assert crate.mainEntity.id == "workflow/workflow.json"
    assert steps["#step-fit"]["exitCode"] == 0
    assert steps["#step-fit"]["instrument"]["name"] == "recast/pyhf"
    assert {
        "recast:step-patch",
        "recast:step-fit",
        "recast:step-summarise",
        "recast:step-plot",
    } <= activities
    assert f"recast:run-{summary['run']}" in activities


def test_verify_catches_tampering_even_with_a_rewritten_manifest(
    example: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(example["archive"], copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = copy / "outputs" / "summarise" / "stop_650_100.json"
    result.write_text(
        result.read_text().replace('"excluded": false', '"excluded": true')
    )
    (copy / "manifest.json").write_text(json.dumps(manifest_of(copy)))

    assert archive_verify(copy) == [
        "outputs/summarise/stop_650_100.json: differs from its sha256 in the RO-Crate"
    ]


@pytest.mark.django_db
def test_a_cancelled_run_is_never_started(demo: Analysis) -> None:
    request = request_submit(
        demo, [check_point(demo, {"patch": "stop_450_0"})], enqueue_runs=False
    )
    run = request.runs.get()
    run_mark_cancelled(str(run.id))

    assert execution.run_execute(str(run.id)) == "cancelled"
    assert not Step.objects.filter(run=run).exists()
    request.refresh_from_db()
    assert request.status == "cancelled"


@pytest.mark.django_db
def test_the_patch_step_refuses_a_patch_for_another_workspace(demo: Analysis) -> None:
    signal = example_signal()
    signal["metadata"]["digests"] = {"sha256": "ab" * 32}

    run = signal_run(demo, signal, "wrong_workspace")

    assert run.status == Status.FAILED
    assert run.failed_step == "patch"
    assert run.error.startswith("step patch failed with exit code 2:\n")
    assert run.error.endswith(
        "recast-pyhf patch: wrong_workspace.json: this patch was made for another "
        "workspace "
        "(sha256 abababababab..., this workspace is 1f340c8de870...)"
    )
    assert archive_verify(Path(run.archive_path)) == []


@pytest.mark.django_db
def test_the_patch_step_refuses_a_signal_without_the_parameter_of_interest(
    demo: Analysis,
) -> None:
    signal = example_signal()
    for operation in signal["patch"]:
        operation["value"]["modifiers"] = [
            m for m in operation["value"]["modifiers"] if m["name"] != "mu_SIG"
        ]

    run = signal_run(demo, signal, "no_poi")

    assert run.status == Status.FAILED
    assert run.error.endswith(
        "recast-pyhf patch: no_poi.json: after patching, no sample carries the "
        "parameter of interest "
        "'mu_SIG'; the patch adds no signal"
    )


@pytest.mark.django_db
def test_the_patch_step_refuses_a_patch_that_does_not_fit_the_workspace(
    demo: Analysis,
) -> None:
    signal = example_signal()
    signal["patch"][0]["path"] = "/channels/7/samples/-"

    run = signal_run(demo, signal, "misfit")

    assert run.status == Status.FAILED
    assert (
        "recast-pyhf patch: misfit.json: the signal patch does not fit the workspace: "
        in run.error
    )


def test_a_point_rerun_from_its_archive_alone_gives_the_same_numbers(
    example: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(example["archive"], copy)  # nothing of the platform's state is used

    compared = archive_rerun(copy, Path(settings.RECAST_ENVS_DIR), tmp_path / "rerun")

    assert compared.status == "succeeded", compared.reason
    assert compared.deviations == {
        "cls_obs": 0.0,
        "cls_exp": 0.0,
        "mu_up_obs": 0.0,
        "mu_up_exp": 0.0,
    }
    assert (copy / "images" / "recast-pyhf" / "requirements.txt").exists()


def test_the_archive_draws_the_steps_with_their_final_states(
    example: dict[str, Any],
) -> None:
    archive = Path(example["archive"])
    drawn = (archive / "graph.svg").read_text()
    crate = ROCrate(archive)

    assert json.loads((archive / "manifest.json").read_text())["files"]["graph.svg"]
    assert crate.get("graph.svg") is not None
    for stage in ("patch", "fit", "summarise", "plot"):
        assert f'class="stage stage-step state-succeeded" data-stage="{stage}"' in drawn
