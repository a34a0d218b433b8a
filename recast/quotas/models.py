"""Limits set by staff per user or group, the CPU time each step used, and
the runs waiting because their owner was at the running limit."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q

from recast.reinterpretation.models import Run


class Quota(models.Model):
    """The limits of one user or one group. A blank limit is inherited (a
    user's from their groups, a group's from the settings); 0 means none."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    max_running = models.PositiveIntegerField(
        null=True, blank=True, help_text="points running at once"
    )
    max_queued = models.PositiveIntegerField(
        null=True, blank=True, help_text="points waiting to run"
    )
    cpu_seconds_month = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="CPU seconds per calendar month (UTC)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True) ^ Q(group__isnull=True),
                name="quota_of_a_user_or_a_group",
            )
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.group}"


class CpuUsage(models.Model):
    """CPU time (user plus system) of one step of one attempt of a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="cpu_usage")
    attempt = models.PositiveIntegerField()
    step = models.CharField(max_length=200)
    cpu_seconds = models.FloatField()
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["run", "attempt", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "attempt", "step"], name="one_usage_per_step"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cpu_seconds:.1f} s CPU by {self.step} of {self.run_id}"


class Deferral(models.Model):
    """A queued run a worker left because its owner was at the running limit;
    it is handed out again when one of the owner's runs ends."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="deferral")
    deferred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deferred_at", "id"]

    def __str__(self) -> str:
        return f"deferral of {self.run_id}"
