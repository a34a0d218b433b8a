"""The reproducibility gate: re-run the example, compare with the reference."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from django.contrib.auth.models import User

from recast.catalogue.loader import entry_folders, read_entry
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load
from recast.cli.main import cli
from recast.core.results import compare
from recast.reinterpretation.models import Run, Validation
from recast.reinterpretation.services import run_start, run_succeed
from recast.reinterpretation.validation import validation_start
from tests.api.conftest import client_for, error
from tests.conftest import DEMO, EVENTS, WORKFLOWS

REFERENCE = json.loads((WORKFLOWS / DEMO / "reference.json").read_text())


def finish_with(validation: Validation, result: dict) -> Validation:  # type: ignore[type-arg]
    run = validation.request.runs.get()
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    run_succeed(str(run.id), attempt, result, "", "")
    validation.refresh_from_db()
    return validation


def test_quantities_within_the_tolerance_pass() -> None:
    obtained = {**REFERENCE, "cls_obs": REFERENCE["cls_obs"] * (1 + 5e-5)}

    rows = compare(REFERENCE, obtained, {"relative": 1e-4})

    assert all(row["ok"] for row in rows)
    assert [row["quantity"] for row in rows][:3] == [
        "cls_obs",
        "cls_exp (-2 sigma)",
        "cls_exp (-1 sigma)",
    ]


def test_a_deviation_names_the_quantity_and_both_values(demo: Analysis) -> None:
    validation = validation_start(demo, enqueue_runs=False)
    changed = {
        **REFERENCE,
        "mu_up_exp": [*REFERENCE["mu_up_exp"][:2], 1.5, *REFERENCE["mu_up_exp"][3:]],
    }

    finished = finish_with(validation, changed)

    expected = REFERENCE["mu_up_exp"][2]
    assert finished.verdict == "fail"
    assert (
        finished.message == f"mu_up_exp (median): expected {expected:.6g}, obtained 1.5"
    )


def test_the_reference_itself_passes(demo: Analysis) -> None:
    finished = finish_with(validation_start(demo, enqueue_runs=False), REFERENCE)

    assert (finished.verdict, finished.message) == (
        "pass",
        "every quantity within the tolerance",
    )


@pytest.mark.django_db(transaction=True)
def test_only_staff_may_start_a_validation_through_the_api(
    demo: Analysis, queued: list[str]
) -> None:
    staff = User.objects.create_user("root", is_staff=True)

    refused = client_for(User.objects.create_user("alice")).post(
        f"/api/v1/analyses/{DEMO}/validate/"
    )
    accepted = client_for(staff).post(f"/api/v1/analyses/{DEMO}/validate/")

    assert error(refused)[:2] == (403, "permission_denied")
    assert accepted.status_code == 202 and accepted.json()["verdict"] == "pending"
    assert len(queued) == 1


CATALOGUED = [folder.name for folder in entry_folders(WORKFLOWS)]


def test_every_analysis_folder_is_validated() -> None:
    # A new folder with a recast.yml joins the reproducibility gate below.
    assert {DEMO, EVENTS} <= set(CATALOGUED)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("slug", CATALOGUED)
def test_recast_validate_reproduces_the_reference_of_every_analysis(
    slug: str,
) -> None:
    analysis_load(read_entry(WORKFLOWS / slug, WORKFLOWS))

    result = CliRunner().invoke(cli, ["validate", slug, "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verdict"] == "pass"
    assert Run.objects.get().status == "succeeded"
    detail = (
        client_for(User.objects.create_user("reader"))
        .get(f"/api/v1/analyses/{slug}/")
        .json()
    )
    assert detail["last_validation"]["verdict"] == "pass"
