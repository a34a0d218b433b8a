"""What one answer costs in queries: a fixed number, whatever the number of
requests, runs and steps (the API's latency under load is mostly these)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from recast.catalogue.models import Analysis
from tests.api.conftest import client_for

NAMES = ["stop_450_0", "stop_450_100", "stop_550_0", "stop_550_100", "stop_650_0"]


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run meanwhile (Django's own query log is reset at
    each request's start, so a wrapper counts instead)."""
    seen: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield seen


@pytest.mark.django_db
def test_the_request_list_and_status_cost_the_same_queries_for_one_run_or_many(
    demo: Analysis, alice: User, queued: list[str]
) -> None:
    client = client_for(alice)
    one = client.post(
        "/api/v1/requests/",
        {"analysis": demo.slug, "patches": NAMES[:1]},
        format="json",
    ).json()["id"]
    scan = client.post(
        "/api/v1/requests/", {"analysis": demo.slug, "patches": NAMES}, format="json"
    ).json()["id"]
    client.get("/api/v1/requests/")  # the token's last use is written once

    costs = {}
    for name, path in {
        "list": "/api/v1/requests/",
        "one": f"/api/v1/requests/{one}/",
        "scan": f"/api/v1/requests/{scan}/",
        "catalogue": "/api/v1/analyses/",
    }.items():
        with statements() as seen:
            answer = client.get(path)
        assert answer.status_code == 200
        costs[name] = len(seen)

    # list: token, the page with its counts (a page shorter than the limit
    # gives the total without a count); status: token, request with its
    # version, runs, steps (counted from the runs); catalogue: token, page.
    assert costs == {"list": 2, "one": 4, "scan": 4, "catalogue": 2}
    assert client.get("/api/v1/requests/").json()["results"][0]["counts"][
        "queued"
    ] == len(NAMES)


@pytest.mark.django_db
def test_a_submit_costs_one_query_more_for_each_stored_file_it_names(
    demo: Analysis, alice: User, queued: list[str]
) -> None:
    client = client_for(alice)
    # The token's last use is written once, and the patches' files are stored
    # by the first submit that names them.
    client.post(
        "/api/v1/requests/", {"analysis": demo.slug, "patches": NAMES}, format="json"
    )

    costs = {}
    for name, patches in {"one": NAMES[:1], "scan": NAMES}.items():
        with statements() as seen:
            answer = client.post(
                "/api/v1/requests/",
                {"analysis": demo.slug, "patches": patches},
                format="json",
            )
        assert answer.status_code == 201
        costs[name] = len(seen)

    # token, analysis, the owner's lock, their quotas, the workflow version,
    # the request, each patch's stored file, the runs, then the answer's runs
    # and steps (the runs are dispatched once it commits, without a query);
    # and a savepoint and its release, since the test holds a transaction.
    assert costs == {"one": 12, "scan": 12 + len(NAMES) - 1}
