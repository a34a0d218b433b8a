"""Quotas through the API: a refused submit names the limit and the usage and
stores nothing; usage for everyone; limits for staff."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.quotas.services import quota_set
from recast.reinterpretation.models import Request
from recast.storage.models import Blob
from tests.api.conftest import client_for, error
from tests.conftest import DEMO, WORKFLOWS

EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"


def test_a_request_past_the_queued_limit_is_refused_and_stores_nothing(
    demo: Analysis, alice: User, as_alice: APIClient, queued: list[str]
) -> None:
    quota_set(alice, {"max_queued": 3})
    accepted = as_alice.post(
        "/api/v1/requests/", {"analysis": DEMO, "scan": "stop_450_*"}, format="json"
    )
    assert accepted.status_code == 201
    blobs = Blob.objects.count()

    with EXAMPLE.open("rb") as signal:
        refused = as_alice.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "signal": signal},
            format="multipart",
        )

    assert error(refused) == (
        429,
        "quota_exceeded",
        "this request has 1 points; your limit on queued points is 3 and 3 are queued",
    )
    assert Request.objects.count() == 1
    assert Blob.objects.count() == blobs


def test_usage_shows_points_and_cpu_against_the_limits(
    demo: Analysis, alice: User, as_alice: APIClient, queued: list[str]
) -> None:
    quota_set(alice, {"max_running": 4})
    as_alice.post(
        "/api/v1/requests/", {"analysis": DEMO, "scan": "stop_450_*"}, format="json"
    )

    body = as_alice.get("/api/v1/usage/").json()

    assert body["user"] == "alice"
    assert (body["running"], body["queued"], body["cpu_seconds"]) == (0, 3, 0.0)
    assert body["limits"] == {
        "max_running": 4,
        "max_queued": None,
        "cpu_seconds_month": None,
    }


def test_only_staff_see_someone_elses_usage(
    alice: User, bob: User, staff: User, as_alice: APIClient
) -> None:
    assert error(as_alice.get("/api/v1/usage/?user=bob")) == (
        404,
        "not_found",
        "no user 'bob'",
    )
    assert client_for(staff).get("/api/v1/usage/?user=bob").json()["user"] == "bob"


def test_staff_set_and_clear_a_users_limits(alice: User, staff: User) -> None:
    root = client_for(staff)
    body = {"max_running": 2, "max_queued": 100, "cpu_seconds_month": None}

    response = root.put("/api/v1/quotas/users/alice/", body, format="json")

    assert response.status_code == 200
    assert response.json() == {**body, "effective": body}
    assert root.delete("/api/v1/quotas/users/alice/").status_code == 204
    assert root.get("/api/v1/quotas/users/alice/").json()["max_running"] is None


def test_a_group_limit_applies_to_its_members(team_member: User, staff: User) -> None:
    root = client_for(staff)
    body = {"max_running": 8, "max_queued": None, "cpu_seconds_month": 36000}
    assert root.put("/api/v1/quotas/groups/stop-team/", body, format="json").json() == (
        body
    )

    effective = root.get("/api/v1/quotas/users/carol/").json()["effective"]

    assert effective == {
        "max_running": 8,
        "max_queued": None,
        "cpu_seconds_month": 36000,
    }
    assert Group.objects.get(name="stop-team").quota.max_running == 8


def test_a_negative_limit_is_refused_naming_the_field(alice: User, staff: User) -> None:
    response = client_for(staff).put(
        "/api/v1/quotas/users/alice/",
        {"max_running": -1, "max_queued": None, "cpu_seconds_month": None},
        format="json",
    )

    assert error(response) == (
        400,
        "invalid",
        "$.max_running: Ensure this value is greater than or equal to 0.",
    )


@pytest.mark.usefixtures("alice")
def test_limits_are_for_staff_only(as_alice: APIClient) -> None:
    response = as_alice.get("/api/v1/quotas/users/alice/")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
