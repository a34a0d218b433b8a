"""Reads of notifications, deliveries, webhooks and follows."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from recast.core.errors import InvalidInput, NotFound
from recast.notifications.models import Delivery, Follow, Webhook


def webhooks_of(user: User) -> QuerySet[Webhook]:
    return Webhook.objects.filter(user=user)


def follows_of(user: User) -> QuerySet[Follow]:
    return Follow.objects.filter(user=user).select_related("analysis")


def deliveries_of(user: User, state: str = "") -> QuerySet[Delivery]:
    found = Delivery.objects.filter(notification__user=user).select_related(
        "notification"
    )
    if state:
        if state not in Delivery.State.values:
            raise InvalidInput(
                f"$.state: must be one of {', '.join(Delivery.State.values)}"
            )
        found = found.filter(state=state)
    return found


def delivery_for(user: User, delivery_id: str) -> Delivery:
    try:
        return deliveries_of(user).select_related("webhook").get(id=delivery_id)
    except (Delivery.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"no delivery {delivery_id} of yours") from None
