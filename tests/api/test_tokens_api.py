"""Tokens through the API: made and shown once, listed without the secret, revoked."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.api.conftest import error

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_and_works_until_revoked(as_alice: APIClient) -> None:
    made = as_alice.post(
        "/api/v1/tokens/", {"name": "laptop", "days": 7}, format="json"
    ).json()
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {made['token']}")

    listed = as_alice.get("/api/v1/tokens/").json()
    works = fresh.get("/api/v1/requests/").status_code
    revoked = as_alice.delete(f"/api/v1/tokens/{made['prefix']}/").status_code
    after = fresh.get("/api/v1/requests/").status_code

    assert made["token"].startswith(f"rc_{made['prefix']}_")
    assert all("token" not in row for row in listed)
    assert [row["name"] for row in listed] == ["laptop", ""]
    assert (works, revoked, after) == (200, 204, 401)


def test_a_token_lifetime_out_of_range_is_refused(as_alice: APIClient) -> None:
    assert error(as_alice.post("/api/v1/tokens/", {"days": 0}, format="json")) == (
        400,
        "invalid",
        "$.days: Ensure this value is greater than or equal to 1.",
    )


def test_revoking_someone_elses_token_is_a_404(as_alice: APIClient, bob: User) -> None:
    made = as_alice.post("/api/v1/tokens/", {}, format="json").json()
    from tests.api.conftest import client_for

    response = client_for(bob).delete(f"/api/v1/tokens/{made['prefix']}/")

    assert error(response) == (
        404,
        "not_found",
        f"no active token {made['prefix']} of yours",
    )


def test_the_api_docs_are_served_without_a_cdn(db: None) -> None:
    page = APIClient().get("/api/v1/docs/").content.decode()
    links = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(
        r'url: "([^"]+)"', page
    )

    assert "swagger-ui" in page
    assert links and all(link.startswith("/") for link in links), links
