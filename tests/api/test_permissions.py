"""Who may do what, over every endpoint: anonymous, owner, another user, a
member of the analysis' team, and staff."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from recast.archive.builder import archive_write
from recast.catalogue.models import Analysis
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Run, Step
from recast.reinterpretation.services import request_submit
from tests.api.conftest import client_for
from tests.conftest import DEMO

pytestmark = pytest.mark.django_db(transaction=True)
ROLES = ["anonymous", "owner", "other", "team", "staff"]


@pytest.fixture
def scene(
    demo: Analysis, alice: User, bob: User, team_member: User, staff: User
) -> dict[str, object]:
    """A restricted analysis of the team, and a request of alice, a team member."""
    team = Group.objects.get(name="stop-team")
    alice.groups.add(team)
    demo.is_public, demo.team = False, team
    demo.save()
    request = request_submit(
        demo,
        [check_point(demo, {"patch": "stop_450_0"})],
        owner=alice,
        enqueue_runs=False,
    )
    clients = {
        "anonymous": APIClient(),
        "owner": client_for(alice),
        "other": client_for(bob),
        "team": client_for(team_member),
        "staff": client_for(staff),
    }
    return {"request": request, "run": request.runs.get(), "clients": clients}


def finished(run: Run, tmp_path: Path) -> None:
    """Give the run an archive and a step log, as a finished run has."""
    log = tmp_path / "fit.log"
    log.write_text("fit done\n")
    Step.objects.create(
        run=run, attempt=1, name="fit", status="succeeded", log_path=str(log)
    )
    archive = tmp_path / "archive"
    archive_write(archive, {"logs/fit.log": log}, {"run.json": {"run": str(run.id)}})
    Run.objects.filter(id=run.id).update(archive_path=str(archive))


Call = Callable[[APIClient, Request], object]
ENDPOINTS: dict[str, tuple[Call, list[int]]] = {
    # name: (call, expected status for anonymous, owner, other, team, staff)
    "analysis list": (
        lambda c, r: c.get("/api/v1/analyses/"),
        [200, 200, 200, 200, 200],
    ),
    "analysis detail": (
        lambda c, r: c.get(f"/api/v1/analyses/{DEMO}/"),
        [404, 200, 404, 200, 200],
    ),
    "request list": (
        lambda c, r: c.get("/api/v1/requests/"),
        [401, 200, 200, 200, 200],
    ),
    "request detail": (
        lambda c, r: c.get(f"/api/v1/requests/{r.id}/"),
        [401, 200, 404, 404, 200],
    ),
    "results": (
        lambda c, r: c.get(f"/api/v1/requests/{r.id}/results/"),
        [401, 200, 404, 404, 200],
    ),
    "run log": (
        lambda c, r: c.get(f"/api/v1/runs/{r.runs.get().id}/logs/fit/"),
        [401, 404, 404, 404, 404],
    ),
    "run archive": (
        lambda c, r: c.get(f"/api/v1/runs/{r.runs.get().id}/archive/"),
        [401, 404, 404, 404, 404],
    ),
    "upload": (
        lambda c, r: c.post(
            "/api/v1/uploads/", {"file": io.BytesIO(b"[]")}, format="multipart"
        ),
        [401, 201, 201, 201, 201],
    ),
    "submit": (
        lambda c, r: c.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "patches": ["stop_550_0"]},
            format="json",
        ),
        [401, 201, 404, 201, 201],
    ),
    "tokens": (lambda c, r: c.get("/api/v1/tokens/"), [401, 200, 200, 200, 200]),
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_the_permission_matrix(scene: dict, endpoint: str, queued: list[str]) -> None:  # type: ignore[type-arg]
    call, expected = ENDPOINTS[endpoint]

    got = [call(scene["clients"][role], scene["request"]).status_code for role in ROLES]  # type: ignore[attr-defined]

    assert dict(zip(ROLES, got, strict=True)) == dict(zip(ROLES, expected, strict=True))


def test_only_the_owner_and_staff_may_cancel(scene: dict, queued: list[str]) -> None:  # type: ignore[type-arg]
    clients, request = scene["clients"], scene["request"]
    path = f"/api/v1/requests/{request.id}/cancel/"

    outsiders = [
        clients[role].post(path).status_code for role in ("anonymous", "other", "team")
    ]
    owner = clients["owner"].post(path).status_code

    assert (outsiders, owner) == ([401, 404, 404], 200)
