"""Followers of an analysis hear when its reproducibility check changes
verdict, and only then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from recast.catalogue.models import Analysis
from recast.notifications.models import Notification
from recast.notifications.services import follow_add, preference_update
from recast.reinterpretation.services import run_start, run_succeed
from recast.reinterpretation.validation import validation_start
from tests.notifications.conftest import Mailbox

pytestmark = pytest.mark.django_db(transaction=True)


def check(analysis: Analysis, result: dict[str, Any]) -> None:
    validation = validation_start(analysis, enqueue_runs=False)
    run = validation.request.runs.get()
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    archive = Path(settings.RECAST_ARCHIVE_DIR) / str(run.id)
    archive.mkdir(parents=True)
    run_succeed(str(run.id), attempt, result, str(archive), "0")


@pytest.fixture
def follower(demo: Analysis) -> User:
    user = User.objects.create_user("dana", email="dana@example.org")
    preference_update(user, validation_changed=True)
    follow_add(user, demo)
    return user


def test_a_follower_hears_when_the_check_starts_failing(
    demo: Analysis, follower: User, mailbox: Mailbox
) -> None:
    bystander = User.objects.create_user("erin", email="erin@example.org")
    preference_update(bystander, validation_changed=True)
    reference = demo.reference_result
    check(demo, reference)
    assert mailbox.messages == []  # a first verdict is no change

    check(demo, {**reference, "mu_up_obs": reference["mu_up_obs"] * 1.5})

    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["dana@example.org"]
    assert message["Subject"] == (
        "recast: reproducibility check of demo-stop-1l now fails (was pass)"
    )
    text = message.get_payload(decode=True).decode()
    assert "mu_up_obs: expected 1.09448, obtained 1.64171" in text
    notification = Notification.objects.get()
    assert notification.payload["verdict"] == "fail"
    assert notification.payload["previous_verdict"] == "pass"


def test_the_same_verdict_again_tells_nobody(
    demo: Analysis, follower: User, mailbox: Mailbox
) -> None:
    check(demo, demo.reference_result)
    check(demo, demo.reference_result)

    assert mailbox.messages == []
