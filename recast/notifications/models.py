"""What a user wants to be told, where to, and every delivery made."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from recast.catalogue.models import Analysis


class Kind(models.TextChoices):
    REQUEST_FINISHED = "request.finished"
    SCAN_HALFWAY = "scan.halfway"
    VALIDATION_CHANGED = "validation.changed"


class Preference(models.Model):
    """Which events a user is told of, and whether by e-mail. A user without a
    row has the defaults: e-mail on, told when a request finishes."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    email = models.BooleanField(default=True)
    email_address = models.EmailField(
        blank=True, help_text="blank: the address of the account"
    )
    request_finished = models.BooleanField(default=True)
    scan_halfway = models.BooleanField(default=False)
    validation_changed = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"notification preferences of {self.user}"


class Webhook(models.Model):
    """A URL that receives every notification of its user as a signed POST."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    # The signing secret, encrypted (recast.credentials.crypto): signing needs
    # it back, so it cannot be hashed. Shown to the user once, at creation.
    secret_ciphertext = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "created_at", "id"]

    def __str__(self) -> str:
        return f"webhook {self.url} of {self.user}"


class Follow(models.Model):
    """A user following an analysis hears when its reproducibility check
    changes verdict."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows"
    )
    analysis = models.ForeignKey(
        Analysis, on_delete=models.CASCADE, related_name="followers"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "analysis"]
        constraints = [
            models.UniqueConstraint(fields=["user", "analysis"], name="unique_follow")
        ]

    def __str__(self) -> str:
        return f"{self.user} follows {self.analysis.slug}"


class Notification(models.Model):
    """One event told to one user. Unique per (user, kind, subject): the same
    transition seen by two workers makes one notification."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject = models.CharField(max_length=100, help_text="the request or validation")
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "subject"], name="one_notification_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} for {self.user}"


class Delivery(models.Model):
    """One notification sent to one place (an address or a webhook), with
    every attempt recorded."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    webhook = models.ForeignKey(
        Webhook,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    target = models.CharField(max_length=500, help_text="the address or the URL")
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    status_code = models.IntegerField(
        null=True, blank=True, help_text="the receiver's last HTTP status"
    )
    last_error = models.TextField(blank=True)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"{self.channel} delivery of {self.notification_id} to {self.target}"
