"""Output shapes of the API (reads only: writes go through services)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, TypeVar

from django.db.models import Model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import Field

from recast.accounts.models import ApiToken
from recast.catalogue.models import Analysis
from recast.reinterpretation.models import Request, Run, Step, Validation
from recast.reinterpretation.selectors import counts_of, run_summary, status_counts

M = TypeVar("M", bound=Model)


class OutputSerializer(serializers.ModelSerializer[M]):
    """A model serializer that works its fields out from the model once per
    class, not for every instance as DRF does: the output serializers of the
    busiest answers (a status builds three) depend on nothing else. Each
    instance gets its own copy, since a field is bound to its serializer."""

    built: ClassVar[dict[str, Field[Any, Any, Any, Any]] | None] = None

    def get_fields(self) -> dict[str, Field[Any, Any, Any, Any]]:
        cls = type(self)
        # A subclass has fields of its own: look in this class only.
        built = cls.__dict__.get("built")
        if built is None:
            built = super().get_fields()
            cls.built = built
        return copy.deepcopy(built)


class AnalysisListSerializer(OutputSerializer[Analysis]):
    class Meta:
        model = Analysis
        fields = [
            "slug",
            "title",
            "collaboration",
            "kind",
            "keywords",
            "references",
            "is_public",
        ]


class ValidationSerializer(serializers.ModelSerializer[Validation]):
    class Meta:
        model = Validation
        fields = [
            "id",
            "verdict",
            "message",
            "deviations",
            "platform_version",
            "created_at",
            "finished_at",
        ]


class AnalysisDetailSerializer(serializers.ModelSerializer[Analysis]):
    workflow = serializers.SerializerMethodField()
    last_validation = serializers.SerializerMethodField()

    class Meta:
        model = Analysis
        fields = [
            "slug",
            "title",
            "collaboration",
            "abstract",
            "kind",
            "keywords",
            "references",
            "is_public",
            "input_schema",
            "example_inputs",
            "reference_result",
            "reference_tolerance",
            "workflow",
            "last_validation",
        ]

    def get_last_validation(self, analysis: Analysis) -> dict[str, Any] | None:
        last = (
            analysis.validations.exclude(verdict="pending")
            .order_by("-created_at")
            .first()
        )
        return dict(ValidationSerializer(last).data) if last else None

    def get_workflow(self, analysis: Analysis) -> dict[str, Any]:
        version = analysis.current_workflow()
        return {
            "version": version.number,
            "digest": version.digest,
            "stages": [stage["name"] for stage in version.spec.get("stages", [])],
            "images": [
                {k: i[k] for k in ("name", "tag", "recipe_sha256")}
                for i in version.images
            ],
            "preserved": version.preserved,
        }


class StepSerializer(OutputSerializer[Step]):
    class Meta:
        model = Step
        fields = [
            "name",
            "attempt",
            "status",
            "image",
            "exit_code",
            "reason",
            "started_at",
            "finished_at",
            "reused",
            "reused_from",
            "cache_key",
        ]


class RunSerializer(OutputSerializer[Run]):
    steps = StepSerializer(many=True, read_only=True)
    result = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "point",
            "status",
            "model_parameters",
            "inputs",
            "attempts",
            "backend",
            "submitted_at",
            "queued_at",
            "started_at",
            "finished_at",
            "error",
            "failed_step",
            "result",
            "archive_sha256",
            "steps",
        ]

    def get_result(self, run: Run) -> dict[str, Any] | None:
        if run.result is None:
            return None
        summary = run_summary(run)
        keys = (
            "cls_obs",
            "cls_exp",
            "mu_up_obs",
            "mu_up_exp",
            "excluded",
            "fit_status",
            "fit_message",
        )
        return {key: summary[key] for key in keys}


class RequestListSerializer(OutputSerializer[Request]):
    analysis: serializers.SlugRelatedField[Analysis] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Request
        fields = [
            "id",
            "analysis",
            "status",
            "is_scan",
            "submitted_at",
            "finished_at",
            "counts",
        ]

    def get_counts(self, request: Request) -> dict[str, int]:
        return status_counts(request)


class RequestDetailSerializer(RequestListSerializer):
    runs = serializers.SerializerMethodField()
    workflow_version = serializers.IntegerField(
        source="workflow_version.number", read_only=True
    )

    cache = serializers.BooleanField(source="use_cache", read_only=True)

    class Meta(RequestListSerializer.Meta):
        fields = [
            *RequestListSerializer.Meta.fields,
            "workflow_version",
            "cache",
            "runs",
        ]

    def runs_of(self, request: Request) -> list[Run]:
        """The request's runs with their steps, read once for its counts and
        its runs both."""
        read: dict[Any, list[Run]] = self.context.setdefault("runs", {})
        if request.pk not in read:
            runs = request.runs.prefetch_related("steps").order_by("point")
            read[request.pk] = list(runs)
        return read[request.pk]

    def get_counts(self, request: Request) -> dict[str, int]:
        return counts_of(self.runs_of(request))

    def get_runs(self, request: Request) -> list[dict[str, Any]]:
        return list(RunSerializer(self.runs_of(request), many=True).data)


class RequestCreateSerializer(serializers.Serializer[Any]):
    """What a submission may hold; exactly one source of points."""

    analysis = serializers.SlugField()
    inputs = serializers.JSONField(required=False, help_text="one point's inputs")
    points = serializers.JSONField(required=False, help_text="a list of {inputs, name}")
    patches = serializers.ListField(child=serializers.CharField(), required=False)
    scan = serializers.CharField(
        required=False, help_text="a glob over the patchset's patch names"
    )
    name = serializers.CharField(
        required=False, help_text="the point's name (one point)"
    )
    signal = serializers.FileField(
        required=False, help_text="a signal patch file (one point)"
    )
    patchset = serializers.FileField(
        required=False, help_text="a pyhf patchset (a scan)"
    )
    cache = serializers.BooleanField(
        required=False,
        default=True,
        help_text="false: run every step, reusing nothing from the step cache",
    )
    credentials = serializers.ListField(
        child=serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,63}$"),
        required=False,
        help_text="names of your credentials that the steps are handed while they "
        "run (for private inputs); such steps are never cached",
    )
    limits = serializers.BooleanField(
        required=False,
        default=True,
        help_text="public likelihoods: false computes CLs at mu = 1 and its "
        "expected band only (much faster, no upper limits), for every point",
    )


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class NonEmptyFileField(serializers.FileField):
    """A file upload that must hold at least one byte."""


class UploadSerializer(serializers.Serializer[Any]):
    file = NonEmptyFileField()


class UploadedSerializer(serializers.Serializer[Any]):
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class CancelledSerializer(serializers.Serializer[Any]):
    cancelled = serializers.IntegerField(help_text="runs cancelled")


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "created_at", "expires_at", "last_used_at"]


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would turn 0 into "0"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false, and only that: DRF would read 0, "yes" and "on"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


def page_of(item: type[serializers.Serializer[Any]], name: str) -> type[Any]:
    """The schema of one page of ``item``s, as limit/offset pagination returns it."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
            "__doc__": f"One page of {item.__name__.removesuffix('Serializer')}.",
        },
    )


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that: DRF would read "90" and true as numbers."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class TokenCreateSerializer(serializers.Serializer[Any]):
    name = StrictCharField(required=False, max_length=100, allow_blank=True)
    days = StrictIntegerField(required=False, min_value=1, max_value=3650, default=90)


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(help_text="shown once; only its hash is kept")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
