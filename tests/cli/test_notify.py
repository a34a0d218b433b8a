"""`recast notifications` and `recast usage` against a live server thread
(pytest-django's live_server, on the test database), over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from django.contrib.auth.models import User

from recast.accounts.services import token_create
from recast.cli.main import cli
from recast.credentials import crypto
from recast.notifications.models import Delivery, Kind, Notification, Webhook
from recast.quotas.services import quota_set

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.org")


@pytest.fixture
def runner(live_server: Any, alice: User, tmp_path: Any) -> CliRunner:
    _, token = token_create(alice)
    return CliRunner(
        env={
            "RECAST_URL": live_server.url,
            "RECAST_TOKEN": token,
            "XDG_CONFIG_HOME": str(tmp_path),
        }
    )


def test_preferences_are_shown_and_set(runner: CliRunner) -> None:
    done = runner.invoke(cli, ["notifications", "set", "--scan-halfway", "--no-email"])
    assert done.exit_code == 0, done.output

    shown = runner.invoke(cli, ["notifications", "show", "--json"])

    assert json.loads(shown.stdout) == {
        "email": False,
        "email_address": "",
        "request_finished": True,
        "scan_halfway": True,
        "validation_changed": False,
    }


def test_set_without_a_preference_is_a_usage_error(runner: CliRunner) -> None:
    done = runner.invoke(cli, ["notifications", "set"])

    assert done.exit_code == 2
    assert "give at least one preference to change" in done.output


def test_a_webhook_is_added_with_its_secret_listed_and_removed(
    runner: CliRunner,
) -> None:
    added = runner.invoke(
        cli, ["notifications", "add-webhook", "https://hooks.example.org/r"]
    )
    assert added.exit_code == 0, added.output
    hook = Webhook.objects.get()
    secret = crypto.decrypt(hook.secret_ciphertext)
    assert f"id:     {hook.id}\nsecret: {secret}\n" in added.stdout
    assert secret not in hook.secret_ciphertext

    listed = runner.invoke(cli, ["notifications", "webhooks"])
    assert listed.stdout == f"{hook.id}  https://hooks.example.org/r\n"

    removed = runner.invoke(cli, ["notifications", "remove-webhook", str(hook.id)])
    assert removed.exit_code == 0
    assert not Webhook.objects.exists()


def test_a_bad_webhook_prints_the_servers_message(runner: CliRunner) -> None:
    done = runner.invoke(cli, ["notifications", "add-webhook", "mailto:a@b.org"])

    assert done.exit_code == 2
    assert done.stderr == "error: $.url: Enter a valid URL.\n"


def test_failed_deliveries_are_listed(runner: CliRunner, alice: User) -> None:
    notification = Notification.objects.create(
        user=alice, kind=Kind.REQUEST_FINISHED, subject="r1", payload={}
    )
    failed = Delivery.objects.create(
        notification=notification,
        channel="webhook",
        target="https://hooks.example.org/r",
        state="failed",
        attempts=5,
        status_code=503,
        last_error="the receiver answered 503 Service Unavailable",
    )

    done = runner.invoke(cli, ["notifications", "deliveries", "--state", "failed"])

    assert done.exit_code == 0, done.output
    assert str(failed.id) in done.stdout
    assert "request.finished   webhook failed    x5 503" in done.stdout
    assert done.stdout.rstrip().endswith(
        "https://hooks.example.org/r: the receiver answered 503 Service Unavailable"
    )


def test_usage_shows_the_limits(runner: CliRunner, alice: User) -> None:
    quota_set(alice, {"max_running": 4, "cpu_seconds_month": 36000})

    done = runner.invoke(cli, ["usage"])

    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "user:    alice",
        "running: 0 of 4",
        "queued:  0 (no limit)",
    ]
    assert lines[3].startswith("CPU:     0 s of 36000 s in ")
