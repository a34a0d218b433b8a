"""Preferences, webhooks, deliveries and follows through the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.notifications.models import Delivery, Kind, Notification, Webhook
from tests.api.conftest import client_for, error


def test_preferences_have_defaults_and_can_be_changed(as_alice: APIClient) -> None:
    assert as_alice.get("/api/v1/notifications/preferences/").json() == {
        "email": True,
        "email_address": "",
        "request_finished": True,
        "scan_halfway": False,
        "validation_changed": False,
    }

    response = as_alice.patch(
        "/api/v1/notifications/preferences/",
        {"scan_halfway": True, "email_address": "a@example.org"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["scan_halfway"] is True
    again = as_alice.get("/api/v1/notifications/preferences/").json()
    assert again["email_address"] == "a@example.org"


def test_a_bad_preference_is_refused_naming_the_field(as_alice: APIClient) -> None:
    response = as_alice.patch(
        "/api/v1/notifications/preferences/",
        {"email_address": "not an address"},
        format="json",
    )

    assert error(response) == (
        400,
        "invalid",
        "$.email_address: Enter a valid email address.",
    )


def test_a_webhook_secret_is_shown_once(as_alice: APIClient) -> None:
    created = as_alice.post(
        "/api/v1/notifications/webhooks/",
        {"url": "https://hooks.example.org/recast"},
        format="json",
    )

    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_")
    listed = as_alice.get("/api/v1/notifications/webhooks/").json()
    assert listed == [
        {
            "id": created.json()["id"],
            "url": "https://hooks.example.org/recast",
            "created_at": created.json()["created_at"],
        }
    ]


def test_a_webhook_that_is_not_http_is_refused(as_alice: APIClient) -> None:
    response = as_alice.post(
        "/api/v1/notifications/webhooks/",
        {"url": "ftp://hooks.example.org/recast"},
        format="json",
    )

    assert error(response) == (
        400,
        "invalid",
        "$.url: must be an http or https URL, got 'ftp://hooks.example.org/recast'",
    )
    assert Webhook.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:5432/", "127.0.0.1"),
        ("http://[::1]/hook", "::1"),
        ("http://169.254.169.254/latest/", "169.254.169.254"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
    ],
)
def test_a_webhook_into_a_private_network_is_refused(
    as_alice: APIClient, url: str, address: str
) -> None:
    response = as_alice.post(
        "/api/v1/notifications/webhooks/", {"url": url}, format="json"
    )

    assert error(response) == (
        400,
        "invalid",
        f"$.url: {address} is a private address ({address}); webhooks go to "
        "public hosts",
    )


def test_someone_elses_webhook_cannot_be_removed(
    as_alice: APIClient,
    bob: User,
) -> None:
    created = as_alice.post(
        "/api/v1/notifications/webhooks/",
        {"url": "https://hooks.example.org/recast"},
        format="json",
    ).json()

    response = client_for(bob).delete(
        f"/api/v1/notifications/webhooks/{created['id']}/"
    )

    assert error(response) == (
        404,
        "not_found",
        f"no webhook {created['id']} of yours",
    )
    assert (
        as_alice.delete(f"/api/v1/notifications/webhooks/{created['id']}/").status_code
        == 204
    )


def test_deliveries_are_listed_by_state_and_only_to_their_owner(
    as_alice: APIClient,
    alice: User,
    bob: User,
) -> None:
    notification = Notification.objects.create(
        user=alice, kind=Kind.REQUEST_FINISHED, subject="r1", payload={}
    )
    failed = Delivery.objects.create(
        notification=notification,
        channel="webhook",
        target="https://hooks.example.org/recast",
        state="failed",
        attempts=5,
        status_code=502,
        last_error="the receiver answered 502 Bad Gateway",
    )

    body = as_alice.get("/api/v1/notifications/deliveries/?state=failed").json()

    assert [d["id"] for d in body["results"]] == [str(failed.id)]
    assert body["results"][0]["event"] == "request.finished"
    assert body["results"][0]["last_error"] == "the receiver answered 502 Bad Gateway"
    assert (
        client_for(bob).get("/api/v1/notifications/deliveries/").json()["results"] == []
    )
    assert error(
        client_for(bob).post(f"/api/v1/notifications/deliveries/{failed.id}/replay/")
    ) == (404, "not_found", f"no delivery {failed.id} of yours")
    assert error(as_alice.get("/api/v1/notifications/deliveries/?state=lost")) == (
        400,
        "invalid",
        "$.state: must be one of pending, delivered, failed",
    )


def test_a_replay_of_a_removed_webhook_is_refused(
    as_alice: APIClient,
    alice: User,
) -> None:
    notification = Notification.objects.create(
        user=alice, kind=Kind.REQUEST_FINISHED, subject="r1", payload={}
    )
    gone = Delivery.objects.create(
        notification=notification, channel="webhook", target="https://x.org/h"
    )

    response = as_alice.post(f"/api/v1/notifications/deliveries/{gone.id}/replay/")

    assert error(response) == (
        409,
        "conflict",
        f"the webhook of delivery {gone.id} was removed; nothing to send",
    )


@pytest.mark.usefixtures("demo")
def test_an_analysis_can_be_followed_and_unfollowed(as_alice: APIClient) -> None:
    assert as_alice.post("/api/v1/analyses/demo-stop-1l/follow/").status_code == 201
    follows = as_alice.get("/api/v1/notifications/follows/").json()
    assert [f["analysis"] for f in follows] == ["demo-stop-1l"]

    assert as_alice.delete("/api/v1/analyses/demo-stop-1l/follow/").status_code == 204
    assert error(as_alice.delete("/api/v1/analyses/demo-stop-1l/follow/")) == (
        404,
        "not_found",
        "you do not follow 'demo-stop-1l'",
    )


def test_an_unknown_analysis_cannot_be_followed(
    as_alice: APIClient, demo: Analysis
) -> None:
    response = as_alice.post("/api/v1/analyses/nope/follow/")

    assert response.status_code == 404
