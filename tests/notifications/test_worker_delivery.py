"""With a broker, a delivery is a Celery task: a real worker process on Redis
sends it, and retries it (with its declared retries) when the receiver fails.
Needs CELERY_BROKER_URL and DATABASE_URL (set by .ci/run); skipped otherwise,
unless RECAST_REQUIRE_SERVICES=1 makes that an error."""

from __future__ import annotations

import subprocess
import time

import pytest
from django.contrib.auth.models import User

from recast.catalogue.models import Analysis
from recast.notifications.models import Delivery
from recast.notifications.services import preference_update, webhook_create
from tests.notifications.conftest import Receiver, submit, succeed
from tests.reinterpretation.test_worker import worker  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read by the worker process, which starts after this fixture."""
    monkeypatch.setenv("RECAST_NOTIFY_BACKOFF", "1")
    monkeypatch.setenv("RECAST_WEBHOOK_ALLOW_PRIVATE", "true")  # a loopback receiver


def delivered(timeout: float = 60) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Delivery.objects.filter(state="delivered").first()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not delivered: {list(Delivery.objects.values())}")


def test_a_worker_sends_a_webhook_and_retries_it_after_a_failure(
    quick_retries: None,
    receiver: Receiver,
    worker: subprocess.Popen[bytes],  # noqa: F811 (the imported fixture)
    demo: Analysis,
) -> None:
    alice = User.objects.create_user("alice")
    preference_update(alice, email=False)
    _, secret = webhook_create(alice, f"{receiver.url}/hook")
    receiver.secrets["/hook"] = secret
    receiver.failures = 1
    request = submit(demo, alice, ["stop_450_0"])

    succeed(request, "stop_450_0")
    delivery = delivered()

    assert (delivery.attempts, delivery.status_code) == (2, 204)
    assert [r.verified for r in receiver.received] == [True, True]
    assert receiver.received[0].body == receiver.received[1].body
    assert worker.poll() is None
