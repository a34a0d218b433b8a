"""The step cache across requests: a resubmission reuses every step (slow:
the first run fits for real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from recast.archive.builder import archive_verify
from recast.catalogue.models import Analysis
from recast.cli.main import cli
from recast.reinterpretation.local import run_locally
from recast.reinterpretation.models import Step
from tests.conftest import DEMO

pytestmark = pytest.mark.slow
STEPS = ["patch", "fit", "summarise", "plot"]
NUMBERS = ("cls_obs", "cls_exp", "mu_up_obs", "mu_up_exp")


@pytest.mark.django_db
def test_an_identical_resubmission_runs_no_step_and_says_so(demo: Analysis) -> None:
    first = run_locally(DEMO, patch="stop_850_0")

    second = run_locally(DEMO, patch="stop_850_0")

    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    assert [second[key] for key in NUMBERS] == [first[key] for key in NUMBERS]
    steps = Step.objects.filter(run_id=second["run"]).order_by("id")
    assert [(s.name, s.status, s.reused, s.reused_from) for s in steps] == [
        (name, "succeeded", True, first["run"]) for name in STEPS
    ]
    archive = Path(second["archive"])
    assert archive_verify(archive) == []
    log = (archive / "logs" / "fit.log").read_text()
    fit = steps.get(name="fit")
    assert log.startswith(
        f"recast: reused from cache entry {fit.cache_key}, "
        f"first produced by run {first['run']}\n"
    )
    record = json.loads((archive / "run.json").read_text())
    assert [s["cache"]["hit"] for s in record["steps"]] == [True] * 4
    crate = json.loads((archive / "ro-crate-metadata.json").read_text())
    entry = next(e for e in crate["@graph"] if e["@id"] == "#step-fit")
    assert entry["isBasedOn"] == {"@id": f"#cache-entry-{fit.cache_key}"}
    assert f"first produced by run {first['run']}" in entry["description"]
    document = json.loads((archive / "provenance.json").read_text())
    reused = document["entity"][f"recast:cache-entry-{fit.cache_key}"]
    assert reused["recast:firstProducedBy"] == f"recast:run-{first['run']}"


@pytest.mark.django_db(transaction=True)
def test_recast_run_with_no_cache_runs_every_step(demo: Analysis) -> None:
    run_locally(DEMO, patch="stop_850_0")

    again = CliRunner().invoke(
        cli, ["run", DEMO, "--patch", "stop_850_0", "--no-cache", "--json"]
    )

    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)
    steps = Step.objects.filter(run_id=summary["run"])
    assert [(s.reused, s.cache_key) for s in steps] == [(False, "")] * 4
