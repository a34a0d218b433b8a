"""Preserved analyses and the versions of their workflows."""

from __future__ import annotations

from typing import Any

from django.db import models


class Analysis(models.Model):
    class Kind(models.TextChoices):
        PUBLIC_LIKELIHOOD = "public-likelihood"
        EVENT_LEVEL = "event-level"
        WORKFLOW = "workflow"

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=300)
    collaboration = models.CharField(max_length=100)
    abstract = models.TextField()
    keywords = models.JSONField(default=list)
    references = models.JSONField(default=dict)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    input_schema = models.JSONField()
    example_inputs = models.JSONField(default=dict)
    reference_result = models.JSONField(default=dict)
    reference_tolerance = models.JSONField(default=dict)
    # sha256 of the stored likelihood files of a public-likelihood analysis
    bkgonly_sha256 = models.CharField(max_length=64, blank=True)
    patchset_sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=500, help_text="folder it was loaded from")
    # An analysis under preparation is seen only by its team until it is public.
    is_public = models.BooleanField(default=True)
    team = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="analyses",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return self.slug

    def current_workflow(self) -> WorkflowVersion:
        return self.workflow_versions.get(is_current=True)


class WorkflowVersion(models.Model):
    """One content version of an analysis' workflow. Never changed once written;
    a changed spec adds a version, and runs keep the version they ran."""

    analysis = models.ForeignKey(
        Analysis, on_delete=models.PROTECT, related_name="workflow_versions"
    )
    number = models.PositiveIntegerField()
    digest = models.CharField(
        max_length=64, help_text="sha256 of the resolved spec and images"
    )
    spec = models.JSONField(help_text="the yadage workflow with references resolved")
    images = models.JSONField(
        help_text="name, tag, recipe folder and recipe hash of each image"
    )
    batch = models.JSONField(
        default=dict,
        blank=True,
        help_text="parameter and max_points when one execution may carry "
        "several points; empty: one point per execution",
    )
    preserved = models.JSONField(
        default=dict,
        help_text="files preserved with the workflow: init parameter -> sha256",
    )
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["analysis", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["analysis", "number"], name="unique_version_number"
            ),
            models.UniqueConstraint(
                fields=["analysis", "digest"], name="unique_version_digest"
            ),
            models.UniqueConstraint(
                fields=["analysis"],
                condition=models.Q(is_current=True),
                name="one_current_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.analysis.slug} v{self.number} ({self.digest[:12]})"

    def image_by_name(self) -> dict[str, dict[str, Any]]:
        return {image["name"]: image for image in self.images}
