"""Per-user rate limits answer 429 with Retry-After, in the one error shape."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from tests.api.conftest import error


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
