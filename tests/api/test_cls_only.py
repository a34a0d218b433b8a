"""Requests that ask for CLs at mu = 1 only (``limits: false``): refused when
malformed, and run for real on the demo against the same points with limits
(slow: real fits on the local backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.core import jsonschema as schemas
from recast.reinterpretation.execution import runs_execute
from recast.reinterpretation.exports import request_export
from recast.reinterpretation.models import Request
from tests.api.conftest import error
from tests.conftest import DEMO

pytestmark = pytest.mark.django_db(transaction=True)
POINTS = ["stop_650_100", "stop_750_0"]


def submit(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/requests/", body, format="json")


def run_request(client: APIClient, body: dict[str, Any]) -> Request:
    """Submit, then execute the request's runs as a worker does: one batch."""
    response = submit(client, body)
    assert response.status_code == 201, response.json()
    ids = [r["id"] for r in response.json()["runs"]]
    assert set(runs_execute(ids).values()) == {"succeeded"}
    return Request.objects.get(id=response.json()["id"])


def results(request: Request) -> dict[str, dict[str, Any]]:
    return {run.point: run.result for run in request.runs.all()}


def test_limits_that_are_no_boolean_are_refused_naming_the_field(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    response = submit(as_alice, {"analysis": DEMO, "scan": "stop_*", "limits": 0})

    status, code, message = error(response)
    assert (status, code) == (400, "invalid")
    assert message.startswith("inputs: $.limits: 0 is not of type 'boolean'")
    assert not Request.objects.exists()


def test_points_that_ask_different_limits_are_refused(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    points = [
        {"inputs": {"patch": "stop_650_100", "limits": False}},
        {"inputs": {"patch": "stop_750_0"}},
    ]
    response = submit(as_alice, {"analysis": DEMO, "points": points})

    assert error(response) == (
        400,
        "invalid",
        "$.points[1].inputs.limits: every point of a request must ask the same "
        "limits (the first asks false)",
    )
    assert not Request.objects.exists()


@pytest.mark.slow
def test_cls_only_gives_the_same_cls_with_no_limits_and_fewer_fits(
    demo: Analysis, alice: User, as_alice: APIClient, queued: list[str], tmp_path: Path
) -> None:
    full = results(run_request(as_alice, {"analysis": DEMO, "patches": POINTS}))
    # The patch step is the first request's, from the step cache, in a
    # folder of this run's own: its manifest must not send the fit to the
    # first run's folder.
    body = {"analysis": DEMO, "patches": POINTS, "limits": False}
    request = run_request(as_alice, body)
    quick = results(request)
    patch = request.runs.get(point=POINTS[0]).steps.get(name="patch")

    assert patch.reused

    for point in POINTS:
        schemas.validate(quick[point], schemas.spec("result/v1"), "result")
        assert quick[point]["fit"]["limits"] == "not_requested"
        assert full[point]["fit"]["limits"] == "computed"
        assert quick[point]["fit"]["status"] == "ok"
        assert quick[point]["cls_obs"] == pytest.approx(
            full[point]["cls_obs"], rel=1e-9
        )
        assert quick[point]["cls_exp"] == pytest.approx(
            full[point]["cls_exp"], rel=1e-9
        )
        assert quick[point]["mu_up_obs"] is None
        assert quick[point]["mu_up_exp"] == [None] * 5
        assert full[point]["mu_up_obs"] is not None
        assert quick[point]["fit"]["n_fits"] * 4 < full[point]["fit"]["n_fits"]

    portal = Client()
    portal.force_login(alice)
    run = request.runs.get(point=POINTS[0])
    page = portal.get(f"/runs/{run.id}/").content.decode()
    assert "Upper limits on μ were not computed" in page
    assert "brazil.svg" not in page

    request_export(request, "hepdata", tmp_path)
    table = yaml.safe_load((tmp_path / "cls_and_upper_limits.yaml").read_text())
    columns = [v["header"]["name"] for v in table["dependent_variables"]]
    assert len(columns) == 6
    assert not any(name.startswith("mu upper limit") for name in columns)
