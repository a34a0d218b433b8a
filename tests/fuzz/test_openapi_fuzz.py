"""schemathesis against the platform's own OpenAPI schema: generated requests,
valid and invalid, for every operation; no 5xx and no response that breaks the
schema. Runs in-process on the WSGI application, with a bounded number of
examples per operation so that it fits in CI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from recast.accounts.services import token_create
from recast.catalogue.models import Analysis
from recast.wsgi import application

# CI runs a fixed, bounded set; RECAST_FUZZ_EXAMPLES=500 digs deeper by hand.
EXAMPLES = int(os.environ.get("RECAST_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = "RECAST_FUZZ_EXAMPLES" not in os.environ
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


@pytest.fixture
def bearer(db: None) -> dict[str, str]:
    user = User.objects.create_user("fuzzer")
    _, token = token_create(user)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def no_throttling(settings: Any) -> None:
    # The fuzzer sends thousands of requests a minute; throttling is tested on its own.
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_CLASSES"] = []
    settings.REST_FRAMEWORK = rest


@pytest.fixture(autouse=True)
def connections_kept_open() -> Iterator[None]:
    """The application is called directly, not through Django's test client, so
    its end-of-request signal would close the test's database connection (and
    with it the test's transaction); keep it open, as the test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=DERANDOMIZE,
)
def test_no_operation_answers_with_a_server_error_or_off_schema(
    case: schemathesis.Case,
    demo: Analysis,
    bearer: dict[str, str],
    queued: list[str],
) -> None:
    excluded = []
    if (case.method, case.path) == ("POST", "/api/v1/notifications/webhooks/"):
        # A well-formed URL whose host does not resolve, or resolves to a
        # private address, is refused with 400: no schema can say so.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(headers=bearer, excluded_checks=excluded)
