"""A token's secret never reaches a log: not when it is made, used, refused
or revoked, and not in the server's request log."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.api.conftest import client_for


@pytest.mark.django_db
def test_no_log_line_holds_a_token(
    alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = client_for(alice).post("/api/v1/tokens/", {"name": "ci"}, format="json")
    token = made.json()["token"]
    prefix = made.json()["prefix"]
    holder = APIClient()
    holder.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    holder.get("/api/v1/requests/")
    holder.delete(f"/api/v1/tokens/{prefix}/")
    refused = holder.get("/api/v1/requests/")
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {token[:-4]}XXXX")
    forged.get("/api/v1/requests/")

    assert refused.status_code == 401
    # The secret is URL-safe base64, which may hold "_" itself.
    secret = token.removeprefix(f"rc_{prefix}_")
    assert len(secret) > 40
    assert caplog.records, "the test must see the log lines it searches"
    assert secret not in caplog.text
    assert secret[:-4] not in caplog.text
