"""Per-user rate limits answer 429 with Retry-After, in the one error shape."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from recast.api.throttling import AddressRateThrottle
from tests.api.conftest import client_for, error


@pytest.mark.django_db
def test_a_user_over_the_rate_is_told_when_to_come_back(
    as_alice: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.clear()
    monkeypatch.setattr(
        UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"}
    )

    answers = [as_alice.get("/api/v1/requests/") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    status, code, message = error(answers[-1])
    assert (status, code) == (429, "throttled")
    assert message.startswith("Request was throttled. Expected available in ")
    assert 1 <= int(answers[-1]["Retry-After"]) <= 61


@pytest.mark.django_db
def test_one_address_is_limited_across_tokens_and_cannot_forge_its_address(
    alice: User, bob: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.clear()
    monkeypatch.setattr(AddressRateThrottle, "THROTTLE_RATES", {"address": "3/minute"})
    clients = [client_for(alice), client_for(bob)]

    answers = [
        clients[i % 2].get("/api/v1/requests/", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        for i in range(4)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["code"] == "throttled"
