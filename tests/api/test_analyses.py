"""The catalogue through the API, and who may see what."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from tests.api.conftest import client_for, error
from tests.conftest import DEMO


@pytest.fixture
def restricted(demo: Analysis) -> Analysis:
    demo.is_public = False
    demo.team, _ = Group.objects.get_or_create(name="stop-team")
    demo.save()
    return demo


def test_anyone_can_list_and_read_public_analyses(demo: Analysis) -> None:
    listed = APIClient().get("/api/v1/analyses/").json()
    detail = APIClient().get(f"/api/v1/analyses/{DEMO}/").json()

    assert [a["slug"] for a in listed["results"]] == [DEMO]
    assert detail["workflow"]["stages"] == ["patch", "fit", "summarise", "plot"]
    assert detail["input_schema"]["oneOf"] == [
        {"required": ["signal"]},
        {"required": ["patch"]},
    ]
    assert detail["reference_result"]["point"] == "stop_650_100"


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("search=squark", [DEMO]),
        ("search=higgs", []),
        ("collaboration=recast%20demo", [DEMO]),
        ("keyword=stop", [DEMO]),
        ("keyword=sbottom", []),
        ("inspire=1755298", []),
    ],
)
def test_analyses_can_be_searched_and_filtered(
    demo: Analysis, query: str, found: list[str]
) -> None:
    listed = APIClient().get(f"/api/v1/analyses/?{query}").json()

    assert [a["slug"] for a in listed["results"]] == found


def test_a_filter_with_a_bad_value_is_a_400(demo: Analysis) -> None:
    assert error(APIClient().get("/api/v1/analyses/?inspire=abc")) == (
        400,
        "invalid",
        "$.inspire: must be an INSPIRE record number",
    )


def test_a_restricted_analysis_is_seen_only_by_its_team_and_staff(
    restricted: Analysis, bob: User, team_member: User, staff: User
) -> None:
    def visible(client: APIClient) -> bool:
        return client.get(f"/api/v1/analyses/{DEMO}/").status_code == 200

    assert [
        visible(APIClient()),
        visible(client_for(bob)),
        visible(client_for(team_member)),
        visible(client_for(staff)),
    ] == [False, False, True, True]


def test_a_restricted_analysis_cannot_be_requested_by_outsiders(
    restricted: Analysis, bob: User
) -> None:
    response = client_for(bob).post(
        "/api/v1/requests/", {"analysis": DEMO, "scan": "*"}, format="json"
    )

    assert error(response)[:2] == (404, "not_found")


def test_the_openapi_schema_is_served(db: None) -> None:
    response = APIClient().get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )

    assert response.status_code == 200
    assert "/api/v1/requests/" in response.json()["paths"]


def test_the_openapi_schema_validates_without_warnings(db: None) -> None:
    out = io.StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    assert "openapi: 3.0.3" in out.getvalue()
