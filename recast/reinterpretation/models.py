"""Reinterpretation requests, the runs of their points, and the runs' steps."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from recast.catalogue.models import Analysis, WorkflowVersion


class Status(models.TextChoices):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class Request(models.Model):
    """A new signal model tested against an analysis: one point, or a scan of many.
    Its status is derived from its runs'."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    analysis = models.ForeignKey(
        Analysis, on_delete=models.PROTECT, related_name="requests"
    )
    workflow_version = models.ForeignKey(
        WorkflowVersion, on_delete=models.PROTECT, related_name="requests"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    is_scan = models.BooleanField(default=False)
    use_cache = models.BooleanField(
        default=True, help_text="whether its steps may reuse cached outputs"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SUBMITTED
    )
    submitted_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    archive_path = models.CharField(max_length=500, blank=True)
    archive_sha256 = models.CharField(max_length=64, blank=True)
    # The client's Idempotency-Key, and a digest of the points it asked for: a
    # repeated submit with the same key returns this request instead of a copy.
    idempotency_key = models.CharField(max_length=200, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-submitted_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="one_request_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"request {self.id} on {self.analysis.slug}"


class Run(models.Model):
    """One model point of a request, executed through the workflow. Its result
    and archive are written once, when it succeeds."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(Request, on_delete=models.CASCADE, related_name="runs")
    point = models.CharField(max_length=200)
    model_parameters = models.JSONField(default=dict)
    inputs = models.JSONField(help_text="the point's inputs; files as sha256:<digest>")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SUBMITTED
    )
    attempts = models.PositiveIntegerField(default=0)
    backend = models.CharField(max_length=32, blank=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="renewed while a worker runs it"
    )
    error = models.TextField(blank=True)
    failed_step = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    archive_path = models.CharField(max_length=500, blank=True)
    archive_sha256 = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the archive's manifest"
    )

    class Meta:
        ordering = ["request", "point", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "point"], name="unique_point_per_request"
            )
        ]
        # Every fair-share claim looks up the waiting and running points by
        # status, oldest first: without it, each claim reads the whole table.
        indexes = [
            models.Index(fields=["status", "submitted_at"], name="run_status_submitted")
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.point})"


class Step(models.Model):
    """One step of one run's workflow, as the engine reported it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    attempt = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices)
    image = models.CharField(max_length=300, blank=True)
    command = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    log_path = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cache_key = models.CharField(
        max_length=64, blank=True, help_text="its step-cache key, when cached"
    )
    reused = models.BooleanField(
        default=False, help_text="its outputs came from the step cache"
    )
    reused_from = models.CharField(
        max_length=200,
        blank=True,
        help_text="the run that first produced the outputs it reused",
    )

    class Meta:
        ordering = ["run", "attempt", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "attempt", "name"], name="unique_step_per_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.run_id}"


class Validation(models.Model):
    """A reproducibility check: the analysis' example re-run and compared with
    its reference result, within its tolerance."""

    class Verdict(models.TextChoices):
        PENDING = "pending"
        PASS = "pass"  # noqa: S105 (a verdict, not a password)
        FAIL = "fail"

    analysis = models.ForeignKey(
        Analysis, on_delete=models.CASCADE, related_name="validations"
    )
    request = models.OneToOneField(
        Request, on_delete=models.CASCADE, related_name="validation"
    )
    verdict = models.CharField(
        max_length=8, choices=Verdict.choices, default=Verdict.PENDING
    )
    deviations = models.JSONField(
        default=list, help_text="quantity, expected, obtained, relative"
    )
    message = models.TextField(blank=True)
    platform_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["analysis", "-created_at"]

    def __str__(self) -> str:
        return f"validation of {self.analysis.slug}: {self.verdict}"
