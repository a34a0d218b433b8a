"""Writes of notifications: preferences, webhooks, follows, and the making and
sending of notifications.

A notification is made once per (user, kind, subject), guarded by a unique
constraint, so the same transition seen by two workers is told once. Each
delivery is sent at least once: a receiver should treat a repeated
X-Recast-Delivery id as the same delivery.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from recast.catalogue.models import Analysis
from recast.core.errors import Conflict, InvalidInput, NotFound
from recast.credentials import crypto
from recast.notifications import channels, messages
from recast.notifications.models import (
    Delivery,
    Follow,
    Kind,
    Notification,
    Preference,
    Webhook,
)

logger = logging.getLogger(__name__)
MAX_WEBHOOKS = 10
PREFERENCE_FIELDS = (
    "email",
    "email_address",
    "request_finished",
    "scan_halfway",
    "validation_changed",
)


def preference_get(user: User) -> Preference:
    """The user's preferences; the defaults (unsaved) when never set."""
    found = Preference.objects.filter(user=user).first()
    return found or Preference(user=user)


def preference_update(user: User, **fields: Any) -> Preference:
    unknown = sorted(set(fields) - set(PREFERENCE_FIELDS))
    if unknown:
        raise InvalidInput(f"$.{unknown[0]}: not a notification preference")
    preference = preference_get(user)
    for name, value in fields.items():
        setattr(preference, name, value)
    preference.save()
    return preference


def webhook_url_check(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"$.url: must be an http or https URL, got {url!r}")
    refused = channels.private_host(url, resolve=False)
    if refused:
        raise InvalidInput(f"$.url: {refused}")


def webhook_create(user: User, url: str) -> tuple[Webhook, str]:
    """Register ``url``; returns the row and its signing secret (shown once)."""
    webhook_url_check(url)
    if Webhook.objects.filter(user=user).count() >= MAX_WEBHOOKS:
        raise Conflict(
            f"you have {MAX_WEBHOOKS} webhooks, the most allowed; remove one first"
        )
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    webhook = Webhook.objects.create(
        user=user, url=url, secret_ciphertext=crypto.encrypt(secret)
    )
    logger.info("webhook %s registered by %s", webhook.id, user.username)
    return webhook, secret


def webhook_delete(user: User, webhook_id: str) -> None:
    try:
        deleted, _ = Webhook.objects.filter(user=user, id=webhook_id).delete()
    except (ValueError, ValidationError):  # not a webhook id at all
        deleted = 0
    if not deleted:
        raise NotFound(f"no webhook {webhook_id} of yours")


def follow_add(user: User, analysis: Analysis) -> Follow:
    follow, _ = Follow.objects.get_or_create(user=user, analysis=analysis)
    return follow


def follow_remove(user: User, analysis: Analysis) -> None:
    deleted, _ = Follow.objects.filter(user=user, analysis=analysis).delete()
    if not deleted:
        raise NotFound(f"you do not follow '{analysis.slug}'")


def wants(preference: Preference, kind: str) -> bool:
    return bool(
        {
            Kind.REQUEST_FINISHED: preference.request_finished,
            Kind.SCAN_HALFWAY: preference.scan_halfway,
            Kind.VALIDATION_CHANGED: preference.validation_changed,
        }[Kind(kind)]
    )


def deliveries_plan(
    notification: Notification, preference: Preference
) -> list[Delivery]:
    user = notification.user
    planned = [
        Delivery(
            notification=notification,
            channel=Delivery.Channel.WEBHOOK,
            webhook=webhook,
            target=webhook.url,
        )
        for webhook in Webhook.objects.filter(user=user)
    ]
    address = preference.email_address or user.email
    if preference.email and address:
        planned.append(
            Delivery(
                notification=notification,
                channel=Delivery.Channel.EMAIL,
                target=address,
            )
        )
    return Delivery.objects.bulk_create(planned)


def notification_make(
    user: User, kind: str, subject: str, payload: dict[str, Any]
) -> list[str]:
    """Make the notification and its deliveries, once; returns the ids of the
    deliveries to send (none when the user does not want it or it exists)."""
    preference = preference_get(user)
    if not wants(preference, kind):
        return []
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user, kind=kind, subject=subject, payload=payload
            )
            deliveries = deliveries_plan(notification, preference)
    except IntegrityError:
        # Another worker saw the same transition first and told it.
        return []
    logger.info(
        "notification %s (%s %s) for %s: %d delivery(ies)",
        notification.id,
        kind,
        subject,
        user.username,
        len(deliveries),
    )
    return [str(d.id) for d in deliveries]


def notify(users: list[User], kind: str, subject: str, payload: dict[str, Any]) -> None:
    from recast.notifications.dispatch import deliver

    ids = [i for user in users for i in notification_make(user, kind, subject, payload)]
    if ids:
        transaction.on_commit(lambda: deliver(ids))


def backoff(attempts: int) -> float:
    """Seconds before the next attempt: doubling from RECAST_NOTIFY_BACKOFF."""
    return float(settings.RECAST_NOTIFY_BACKOFF * 2 ** (attempts - 1))


def envelope(notification: Notification) -> dict[str, Any]:
    """The JSON body a webhook receives."""
    return {
        "id": str(notification.id),
        "event": notification.kind,
        "created_at": notification.created_at.isoformat(),
        "data": notification.payload,
    }


def send(delivery: Delivery) -> channels.Attempt:
    notification = delivery.notification
    if delivery.channel == Delivery.Channel.EMAIL:
        subject, text = messages.email(notification.kind, notification.payload)
        return channels.email_send(delivery.target, subject, text)
    if delivery.webhook is None:
        return channels.Attempt(False, None, "the webhook was removed")
    return channels.webhook_post(
        delivery.webhook.url,
        crypto.decrypt(delivery.webhook.secret_ciphertext),
        envelope(notification),
        str(delivery.id),
    )


def delivery_attempt(delivery_id: str) -> float | None:
    """Send a pending delivery once and record how it went. Returns the seconds
    to wait before trying again, or None when there is nothing more to do
    (delivered, given up after RECAST_NOTIFY_ATTEMPTS, or not pending)."""
    delivery = (
        Delivery.objects.select_related("notification", "webhook")
        .filter(id=delivery_id, state=Delivery.State.PENDING)
        .first()
    )
    if delivery is None:
        return None
    attempt = send(delivery)

    attempts = delivery.attempts + 1
    state = Delivery.State.PENDING
    if attempt.ok:
        state = Delivery.State.DELIVERED
    elif attempts >= settings.RECAST_NOTIFY_ATTEMPTS:
        state = Delivery.State.FAILED
    now = timezone.now()
    Delivery.objects.filter(id=delivery.id, attempts=delivery.attempts).update(
        attempts=attempts,
        state=state,
        status_code=attempt.status_code,
        last_error=attempt.error,
        attempted_at=now,
        delivered_at=now if attempt.ok else None,
    )
    logger.info(
        "delivery %s (%s to %s) attempt %d: %s",
        delivery.id,
        delivery.channel,
        delivery.target,
        attempts,
        state if attempt.ok else f"{state}: {attempt.error}",
    )
    return backoff(attempts) if state == Delivery.State.PENDING else None


def delivery_replay(user: User, delivery_id: str) -> Delivery:
    """Send a recorded delivery again, as a new delivery of the same
    notification (the old one keeps its record)."""
    from recast.notifications.dispatch import deliver
    from recast.notifications.selectors import delivery_for

    old = delivery_for(user, delivery_id)
    if old.channel == Delivery.Channel.WEBHOOK and old.webhook is None:
        raise Conflict(f"the webhook of delivery {old.id} was removed; nothing to send")
    replay = Delivery.objects.create(
        notification=old.notification,
        channel=old.channel,
        webhook=old.webhook,
        target=old.webhook.url if old.webhook else old.target,
        replay_of=old,
    )
    transaction.on_commit(lambda: deliver([str(replay.id)]))
    return replay
