"""The REST API's views: parse, call one service or selector, answer."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request as HttpRequest
from rest_framework.response import Response
from rest_framework.views import APIView

from recast.accounts.models import ApiToken
from recast.accounts.services import token_create, token_revoke
from recast.api import serializers as out
from recast.api.pagination import StrictLimitOffsetPagination
from recast.archive.exports import analyses_json
from recast.catalogue.models import Analysis
from recast.catalogue.selectors import analysis_get, analysis_list, analysis_search
from recast.core.errors import InvalidInput, NotFound
from recast.credentials.services import credential_names_check, request_accept_using
from recast.reinterpretation import selectors
from recast.reinterpretation.exports import TARGETS, request_export
from recast.reinterpretation.idempotency import key_check
from recast.reinterpretation.models import Request, Run
from recast.reinterpretation.services import request_cancel
from recast.reinterpretation.submission import (
    SOURCES,
    cache_flag,
    check_size,
    points_from,
)
from recast.reinterpretation.validation import validation_start
from recast.storage.services import blob_store

FILE_FIELDS = ("signal", "patchset")


class AnalysisList(generics.ListAPIView[Analysis]):
    """Catalogued analyses, with search and filters."""

    serializer_class = out.AnalysisListSerializer
    permission_classes = [permissions.AllowAny]
    queryset = Analysis.objects.none()  # for the schema; get_queryset filters by user

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "search", str, description="words in the title, abstract or keywords"
            ),
            OpenApiParameter("collaboration", str),
            OpenApiParameter("keyword", str),
            OpenApiParameter(
                "inspire",
                {"type": "integer", "minimum": 1},
                description="INSPIRE record id",
            ),
            OpenApiParameter("hepdata_doi", str),
        ]
    )
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Analysis]:
        params = self.request.query_params
        return analysis_search(
            self.request.user,
            **{
                name: params.get(name, "")
                for name in ("search", "collaboration", "keyword", "hepdata_doi")
            },
            inspire=params.get("inspire"),
        )


class AnalysisDetail(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=out.AnalysisDetailSerializer)
    def get(self, request: HttpRequest, slug: str) -> Response:
        analysis = analysis_get(slug, request.user)
        return Response(out.AnalysisDetailSerializer(analysis).data)


class AnalysisValidate(APIView):
    """Staff: re-run the analysis' example and compare with its reference; the
    verdict appears in the analysis' ``last_validation`` once the run ends."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: out.ValidationSerializer})
    def post(self, request: HttpRequest, slug: str) -> Response:
        started = validation_start(analysis_get(slug, request.user))
        body = out.ValidationSerializer(started).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class UploadCreate(APIView):
    """Store a file by its sha256; the same bytes are stored once."""

    parser_classes = [MultiPartParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=out.UploadSerializer, responses={201: out.UploadedSerializer}
    )
    def post(self, request: HttpRequest) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("$.file: send the file as the multipart field 'file'")
        content = upload.read()
        if not content:
            raise InvalidInput("$.file: the file is empty")
        check_size("file", content)
        blob = blob_store(content)
        return Response(
            {"sha256": blob.sha256, "size": blob.size}, status=status.HTTP_201_CREATED
        )


class RequestListCreate(APIView):
    """Your requests; submit a new one (one point or a scan)."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="requests_list",
        responses=out.page_of(out.RequestListSerializer, "RequestPage"),
    )
    def get(self, request: HttpRequest) -> Response:
        paginator = StrictLimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.request_list_counted(request.user), request, view=self
        )
        return paginator.get_paginated_response(
            out.RequestListSerializer(page, many=True).data
        )

    @extend_schema(
        request=out.RequestCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="submit at most once: a repeated submit with this key "
                "answers 200 with the request made the first time",
            )
        ],
        responses={
            201: out.RequestDetailSerializer,
            200: out.RequestDetailSerializer,
        },
    )
    def post(self, request: HttpRequest) -> Response:
        if not hasattr(request.data, "items"):
            raise InvalidInput(
                "$: the body must be an object with 'analysis' and one source of points"
            )
        for name in FILE_FIELDS:
            given = request.data.get(name) not in (None, "")
            if given and name not in request.FILES:
                raise InvalidInput(
                    f"$.{name}: not received as a file: send it as a multipart file "
                    "part with a file name (a file name that is not UTF-8 is not "
                    "understood), or give sha256:<digest> of an upload in 'inputs'"
                )
        data = {
            k: v
            for k, v in request.data.items()
            if k not in request.FILES and k not in FILE_FIELDS
        }
        files = {
            name: (f.name, f.read())
            for name, f in request.FILES.items()
            if name in FILE_FIELDS
        }
        # Any other file is an input of the point, named by its field (repeated
        # for an input that is a list of files).
        attached = {
            name: [(f.name, f.read()) for f in request.FILES.getlist(name)]
            for name in request.FILES
            if name not in FILE_FIELDS
        }
        if not data.get("analysis"):
            raise InvalidInput("$.analysis: required: the slug of the analysis")
        analysis = analysis_get(str(data["analysis"]), request.user)
        if request.content_type.startswith("multipart/") and not any(
            data.get(name) not in (None, "") or name in files for name in SOURCES
        ):
            # Files named by a point's inputs come with 'inputs'; none came either.
            raise InvalidInput(
                f"give exactly one of {', '.join(SOURCES)} (got none; a multipart "
                "part whose field or file name cannot be read, such as a file name "
                "that is not UTF-8, is dropped)"
            )

        key = request.headers.get("Idempotency-Key")
        if key is not None:
            key_check(key)
        points = points_from(analysis, data, files, attached)
        use_cache = cache_flag(data)
        owner = request.user if isinstance(request.user, User) else None
        names = credential_names_check(owner, data.get("credentials"))
        created, new = request_accept_using(
            analysis, points, owner, names, key, use_cache
        )
        return Response(
            out.RequestDetailSerializer(created).data,
            status=status.HTTP_201_CREATED if new else status.HTTP_200_OK,
        )


class RequestDetail(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=out.RequestDetailSerializer)
    def get(self, request: HttpRequest, request_id: str) -> Response:
        found = selectors.request_detail_for(request.user, request_id)
        return Response(out.RequestDetailSerializer(found).data)


class RequestCancel(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=out.CancelledSerializer)
    def post(self, request: HttpRequest, request_id: str) -> Response:
        found = selectors.request_for(request.user, request_id)
        return Response({"cancelled": request_cancel(found)})


def csv_response(runs: list[Run], filename: str) -> HttpResponse:
    response = HttpResponse(
        selectors.results_csv(runs), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


AS_FORMAT = OpenApiParameter(
    "as", str, enum=["json", "csv"], description="default json"
)


def wants_csv(request: HttpRequest) -> bool:
    kind = request.query_params.get("as", "json")
    if kind not in ("json", "csv"):
        raise InvalidInput("$.as: must be json or csv")
    return kind == "csv"


class RequestResults(APIView):
    """Every point's numbers, with its model parameters, as JSON or CSV."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[AS_FORMAT],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request: HttpRequest, request_id: str) -> HttpResponse:
        found = selectors.request_for(request.user, request_id)
        runs = selectors.request_runs(found)
        if wants_csv(request):
            return csv_response(runs, f"recast-{found.id}.csv")
        return Response(
            {
                "request": str(found.id),
                "status": found.status,
                "results": [selectors.run_summary(run) for run in runs],
            }
        )


class RequestExport(APIView):
    """The request exported for CAP, HEPData or INSPIRE, as a .tar.gz."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("to", str, enum=list(TARGETS), required=True)],
        responses={(200, "application/gzip"): OpenApiTypes.BINARY},
    )
    def get(self, request: HttpRequest, request_id: str) -> FileResponse:
        found = selectors.request_for(request.user, request_id)
        target = request.query_params.get("to", "")
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / f"{target}-{found.id}"
            request_export(found, target, folder)
            name = f"recast-{target}-{found.id}.tar.gz"
            return tarball(folder, folder.name, name)


class AnalysesForHepdata(APIView):
    """The catalogue in HEPData's analyses.json format for reinterpretation tools."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: HttpRequest) -> Response:
        analyses = [
            {"slug": a.slug, "references": a.references}
            for a in analysis_list(request.user)
        ]
        return Response(analyses_json(analyses, settings.RECAST_PUBLIC_URL))


class RunDetail(APIView):
    """One point: its state, steps and numbers; ``?as=csv`` gives its result row."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[AS_FORMAT],
        responses={
            (200, "application/json"): out.RunSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request: HttpRequest, run_id: str) -> HttpResponse:
        run = selectors.run_for(request.user, run_id)
        if wants_csv(request):
            return csv_response([run], f"recast-run-{run.id}.csv")
        return Response(out.RunSerializer(run).data)


def tarball(folder: Path, arcname: str, filename: str) -> FileResponse:
    # The spooled file closes with the response, which streams it.
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    with tarfile.open(fileobj=spool, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=filename)


def archive_response(owner: Request | Run, kind: str) -> FileResponse:
    """A request's or a run's archive, once it has one."""
    if not owner.archive_path or not Path(owner.archive_path).is_dir():
        raise NotFound(f"{kind} {owner.id} has no archive yet ({owner.status})")
    return tarball(
        Path(owner.archive_path), str(owner.id), f"recast-{kind}-{owner.id}.tar.gz"
    )


class RequestArchive(APIView):
    """The archive of a finished request (its points' archives and the result
    table) as a .tar.gz."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request: HttpRequest, request_id: str) -> FileResponse:
        return archive_response(
            selectors.request_for(request.user, request_id), "request"
        )


class RunArchive(APIView):
    """The run's archive as a .tar.gz."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY})
    def get(self, request: HttpRequest, run_id: str) -> FileResponse:
        return archive_response(selectors.run_for(request.user, run_id), "run")


class RunLog(APIView):
    """The log of one step of a run, as text."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: HttpRequest, run_id: str, step: str) -> HttpResponse:
        run = selectors.run_for(request.user, run_id)
        found = run.steps.filter(name=step).order_by("-attempt").first()
        if found is None:
            raise NotFound(f"run {run.id} has no step '{step}'")
        archived = (
            Path(run.archive_path) / "logs" / f"{step}.log"
            if run.archive_path
            else None
        )
        path = archived if archived and archived.is_file() else Path(found.log_path)
        text = path.read_text(errors="replace") if path.is_file() else ""
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


class TokenListCreate(APIView):
    """Your API tokens; make a new one (shown once, in this answer only)."""

    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=out.TokenSerializer(many=True))
    def get(self, request: HttpRequest) -> Response:
        assert isinstance(request.user, User)  # IsAuthenticated
        tokens = ApiToken.objects.filter(user=request.user, revoked_at__isnull=True)
        return Response(out.TokenSerializer(tokens, many=True).data)

    @extend_schema(
        request=out.TokenCreateSerializer, responses={201: out.TokenCreatedSerializer}
    )
    def post(self, request: HttpRequest) -> Response:
        given = out.TokenCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated
        row, token = token_create(
            request.user,
            given.validated_data.get("name", ""),
            given.validated_data["days"],
        )
        body = {**out.TokenSerializer(row).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRevoke(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: HttpRequest, prefix: str) -> Response:
        assert isinstance(request.user, User)  # IsAuthenticated
        token_revoke(request.user, prefix)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(exclude=True)
class NoSuchEndpoint(APIView):
    """Every path under /api/v1/ that no route matches: a 404 in the API's error
    shape rather than Django's HTML page (a slug with characters a slug cannot
    have lands here too)."""

    permission_classes = [permissions.AllowAny]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.request_path = request.path
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFound(f"no API endpoint at {self.request_path} (see /api/v1/docs/)")
