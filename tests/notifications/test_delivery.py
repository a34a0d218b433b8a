"""A request that ends is told to its owner once: by e-mail through a real SMTP
server, and by signed POSTs to a real HTTP receiver on loopback, retried with
backoff and recorded."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from recast.catalogue.models import Analysis
from recast.notifications import dispatch, hooks
from recast.notifications.models import Delivery, Notification
from recast.notifications.services import (
    delivery_replay,
    preference_update,
    webhook_create,
)
from recast.reinterpretation.services import request_cancel
from tests.notifications.conftest import Mailbox, Receiver, fail, submit, succeed

# Deliveries leave after the commit, as in production: no test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.org")


def hook(receiver: Receiver, user: User, path: str = "/hook") -> str:
    webhook, secret = webhook_create(user, f"{receiver.url}{path}")
    receiver.secrets[path] = secret
    return str(webhook.id)


def test_a_finished_request_is_mailed_with_its_results_and_links(
    demo: Analysis, alice: User, mailbox: Mailbox
) -> None:
    request = submit(demo, alice, ["stop_450_0", "stop_550_0"])
    succeed(request, "stop_450_0")
    fail(request, "stop_550_0", "step fit failed with exit code 1")

    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["alice@example.org"]
    assert message["Subject"] == "recast: request on demo-stop-1l failed"
    text = message.get_payload(decode=True).decode()
    assert f"Request {request.id} failed (1 succeeded, 1 failed)." in text
    assert "  stop_450_0: CLs obs 0.0676, exp 0.15; mu_up obs 1.094, exp 1.43" in text
    assert "  stop_550_0: failed step fit failed with exit code 1" in text
    base = f"https://recast.example.org/api/v1/requests/{request.id}/"
    assert f"Results: {base}results/?as=csv" in text
    assert f"Archive: {base}archive/" in text
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.channel) == (
        "delivered",
        1,
        "email",
    )


def test_a_webhook_gets_a_signed_body_and_the_delivery_is_recorded(
    demo: Analysis, alice: User, receiver: Receiver
) -> None:
    preference_update(alice, email=False)
    hook_id = hook(receiver, alice)
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    [received] = receiver.received
    assert received.verified
    body = received.json()
    assert body["event"] == "request.finished"
    assert body["data"]["request"]["status"] == "succeeded"
    assert body["data"]["results"][0]["cls_obs"] == 0.0676
    delivery = Delivery.objects.get()
    assert received.headers["X-Recast-Delivery"] == str(delivery.id)
    assert received.headers["X-Recast-Event"] == "request.finished"
    assert (delivery.state, delivery.attempts, delivery.status_code) == (
        "delivered",
        1,
        204,
    )
    assert str(delivery.webhook_id) == hook_id


def test_a_failing_receiver_is_retried_until_it_accepts(
    demo: Analysis, alice: User, receiver: Receiver
) -> None:
    preference_update(alice, email=False)
    hook(receiver, alice)
    receiver.failures = 2
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    assert len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.status_code) == (
        "delivered",
        3,
        204,
    )
    assert delivery.last_error == ""


def test_a_receiver_that_keeps_failing_is_given_up_on_and_can_be_replayed(
    demo: Analysis, alice: User, receiver: Receiver, settings: Any
) -> None:
    settings.RECAST_NOTIFY_ATTEMPTS = 3
    preference_update(alice, email=False)
    hook(receiver, alice)
    receiver.failures = 10
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    failed = Delivery.objects.get()
    assert (failed.state, failed.attempts, failed.status_code) == ("failed", 3, 500)
    assert failed.last_error == "the receiver answered 500 Internal Server Error"

    receiver.failures = 0
    replay = delivery_replay(alice, str(failed.id))
    replay.refresh_from_db()
    assert (replay.state, replay.attempts, replay.replay_of_id) == (
        "delivered",
        1,
        failed.id,
    )
    assert receiver.received[-1].json() == receiver.received[0].json()
    assert receiver.received[-1].verified


def test_a_webhook_that_cannot_be_reached_is_recorded_with_the_reason(
    demo: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_NOTIFY_ATTEMPTS, settings.RECAST_NOTIFY_BACKOFF = 2, 0
    settings.RECAST_WEBHOOK_ALLOW_PRIVATE = True
    preference_update(alice, email=False)
    from tests.servers import free_port

    webhook_create(alice, f"http://127.0.0.1:{free_port()}/gone")
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.status_code) == (
        "failed",
        2,
        None,
    )
    assert delivery.last_error.startswith("cannot reach http://127.0.0.1:")


def test_the_same_end_seen_twice_is_told_once(
    demo: Analysis, alice: User, mailbox: Mailbox
) -> None:
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")
    hooks.request_finished(request.id)

    assert len(mailbox.messages) == 1
    assert Notification.objects.count() == 1


def test_two_workers_finishing_the_last_two_points_at_once_notify_once(
    demo: Analysis, mailbox: Mailbox
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip(
            "the SQLite test database (shared memory) refuses concurrent writers"
        )
    alice = User.objects.create_user("alice", email="alice@example.org")
    request = submit(demo, alice, ["stop_450_0", "stop_550_0"])
    gate = threading.Barrier(2)
    errors: list[BaseException] = []

    def finish(point: str) -> None:
        try:
            gate.wait()
            succeed(request, point)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=finish, args=(p,)) for p in ("stop_450_0", "stop_550_0")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    request.refresh_from_db()
    assert request.status == "succeeded"
    assert len(mailbox.messages) == 1


def test_a_cancelled_request_is_told_too(
    demo: Analysis, alice: User, mailbox: Mailbox
) -> None:
    request = submit(demo, alice, ["stop_450_0", "stop_550_0"])
    succeed(request, "stop_450_0")
    request_cancel(request)

    [(_, message)] = mailbox.messages
    assert message["Subject"] == "recast: request on demo-stop-1l cancelled"


def test_nothing_is_sent_to_a_user_who_turned_it_off(
    demo: Analysis, alice: User, mailbox: Mailbox
) -> None:
    preference_update(alice, request_finished=False)
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    assert mailbox.messages == []
    assert Notification.objects.count() == 0


def test_a_scan_past_half_way_is_told_once_when_asked(
    demo: Analysis, alice: User, mailbox: Mailbox
) -> None:
    preference_update(alice, scan_halfway=True)
    points = ["stop_450_0", "stop_550_0", "stop_650_0", "stop_650_100"]
    request = submit(demo, alice, points)
    succeed(request, points[0])
    assert mailbox.messages == []

    succeed(request, points[1])
    succeed(request, points[2])
    [(_, halfway)] = mailbox.messages
    assert halfway["Subject"] == (
        "recast: scan on demo-stop-1l is past half way (2 of 4 points)"
    )

    succeed(request, points[3])
    assert [m["Subject"] for _, m in mailbox.messages][1] == (
        "recast: request on demo-stop-1l succeeded"
    )
    assert len(mailbox.messages) == 2


def test_the_server_sends_deliveries_on_its_own_background_threads(
    demo: Analysis,
    alice: User,
    receiver: Receiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.RECAST_INPROCESS_WORKERS = 1
    preference_update(alice, email=False)
    hook(receiver, alice)
    receiver.failures = 1
    # The test database (SQLite in shared memory) refuses a reader while
    # another connection writes, so the thread starts once the run is done.
    gate = threading.Event()
    send = dispatch.deliver_in_thread
    monkeypatch.setattr(
        dispatch, "deliver_in_thread", lambda i: gate.wait(30) and send(i)
    )
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")
    gate.set()

    deadline = time.monotonic() + 30
    while len(receiver.received) < 2:
        assert time.monotonic() < deadline, "the receiver heard nothing"
        time.sleep(0.1)
    dispatch.pool().shutdown(wait=True)
    dispatch._pool = None
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.status_code) == (
        "delivered",
        2,
        204,
    )


def test_a_webhook_into_this_machine_is_not_posted_to(
    demo: Analysis, alice: User, settings: Any
) -> None:
    settings.RECAST_NOTIFY_ATTEMPTS = 1
    settings.RECAST_WEBHOOK_ALLOW_PRIVATE = True
    preference_update(alice, email=False)
    webhook_create(alice, "http://localhost:5432/")
    settings.RECAST_WEBHOOK_ALLOW_PRIVATE = False
    request = submit(demo, alice, ["stop_450_0"])
    succeed(request, "stop_450_0")

    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.last_error) == (
        "failed",
        "localhost is a private address (127.0.0.1); webhooks go to public hosts",
    )
