"""The API of quotas: your usage, and staff's limits per user or group."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request as HttpRequest
from rest_framework.response import Response
from rest_framework.views import APIView

from recast.core.errors import NotFound
from recast.quotas import selectors, services
from recast.quotas.models import Quota


class QuotaSerializer(serializers.Serializer[Any]):
    max_running = serializers.IntegerField(min_value=0, allow_null=True)
    max_queued = serializers.IntegerField(min_value=0, allow_null=True)
    cpu_seconds_month = serializers.IntegerField(min_value=0, allow_null=True)


def user_named(name: str) -> User:
    found = User.objects.filter(username=name).first()
    if found is None:
        raise NotFound(f"no user '{name}'")
    return found


def group_named(name: str) -> Group:
    found = Group.objects.filter(name=name).first()
    if found is None:
        raise NotFound(f"no group '{name}'")
    return found


def quota_body(quota: Quota | None) -> dict[str, Any]:
    return {name: getattr(quota, name, None) for name in selectors.LIMITS}


class Usage(APIView):
    """What you use now (points running and queued, CPU seconds this month)
    against your limits (null: no limit). Staff may ask for ``?user=NAME``."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("user", str, description="staff only")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: HttpRequest) -> Response:
        assert isinstance(request.user, User)  # IsAuthenticated
        name = request.query_params.get("user", "")
        user = request.user
        if name and name != user.username:
            if not user.is_staff:
                raise NotFound(f"no user '{name}'")
            user = user_named(name)
        return Response(selectors.usage_for(user))


class QuotaDetail(APIView):
    """Staff: the limits set on one user or group (null: inherited). PUT sets
    all three; DELETE goes back to inheriting them."""

    permission_classes = [permissions.IsAdminUser]
    kind = "user"

    def owner(self, name: str) -> User | Group:
        return user_named(name) if self.kind == "user" else group_named(name)

    def current(self, owner: User | Group) -> dict[str, Any]:
        key = services.owner_key(owner)
        body = quota_body(Quota.objects.filter(**key).first())
        if isinstance(owner, User):
            body["effective"] = selectors.limits_for(owner).as_dict()
        return body

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: HttpRequest, name: str) -> Response:
        return Response(self.current(self.owner(name)))

    @extend_schema(request=QuotaSerializer, responses={200: OpenApiTypes.OBJECT})
    def put(self, request: HttpRequest, name: str) -> Response:
        owner = self.owner(name)
        given = QuotaSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.quota_set(owner, dict(given.validated_data), replace=True)
        return Response(self.current(owner))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: HttpRequest, name: str) -> Response:
        services.quota_clear(self.owner(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupQuotaDetail(QuotaDetail):
    kind = "group"
