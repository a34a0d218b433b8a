"""An Idempotency-Key makes a submit safe to repeat."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.reinterpretation.models import Request, Run
from tests.api.conftest import client_for, error
from tests.conftest import DEMO

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client: APIClient, body: dict[str, object], key: str) -> Any:
    return client.post(
        "/api/v1/requests/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_a_repeated_submit_returns_the_first_request(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    body = {"analysis": DEMO, "scan": "stop_450_*"}

    first = submit(as_alice, body, "k-1")
    again = submit(as_alice, body, "k-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Request.objects.count() == 1
    assert Run.objects.count() == len(queued) == 3


def test_the_same_key_for_other_points_is_a_conflict(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    first = submit(as_alice, {"analysis": DEMO, "patches": ["stop_450_0"]}, "k-2")

    other = submit(as_alice, {"analysis": DEMO, "patches": ["stop_550_0"]}, "k-2")

    assert error(other) == (
        409,
        "conflict",
        f"Idempotency-Key 'k-2' was used for another request "
        f"({first.json()['id']}); use a new key for a new request",
    )
    assert Request.objects.count() == 1


def test_keys_belong_to_their_user(
    demo: Analysis, as_alice: APIClient, bob: User, queued: list[str]
) -> None:
    body = {"analysis": DEMO, "patches": ["stop_450_0"]}
    mine = submit(as_alice, body, "shared")
    theirs = submit(client_for(bob), body, "shared")

    assert theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_bad_key_is_refused(demo: Analysis, as_alice: APIClient) -> None:
    response = submit(as_alice, {"analysis": DEMO, "scan": "*"}, "has space")

    assert error(response) == (
        400,
        "invalid",
        "Idempotency-Key: must be 1 to 200 printable ASCII characters without "
        "spaces (a UUID is a good key)",
    )
    assert not Request.objects.exists()
