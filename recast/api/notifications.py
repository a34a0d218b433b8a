"""The API of notifications: preferences, webhooks, deliveries, follows."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request as HttpRequest
from rest_framework.response import Response
from rest_framework.views import APIView

from recast.api.pagination import StrictLimitOffsetPagination
from recast.api.serializers import StrictBooleanField, page_of
from recast.catalogue.selectors import analysis_get
from recast.notifications import selectors, services
from recast.notifications.models import Delivery, Follow, Preference, Webhook


class PreferenceSerializer(serializers.ModelSerializer[Preference]):
    class Meta:
        model = Preference
        fields = list(services.PREFERENCE_FIELDS)


class PreferenceUpdateSerializer(serializers.Serializer[Any]):
    email = StrictBooleanField(required=False)
    email_address = serializers.EmailField(required=False, allow_blank=True)
    request_finished = StrictBooleanField(required=False)
    scan_halfway = StrictBooleanField(required=False)
    validation_changed = StrictBooleanField(required=False)


class WebhookSerializer(serializers.ModelSerializer[Webhook]):
    class Meta:
        model = Webhook
        fields = ["id", "url", "created_at"]


class WebhookCreateSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=500)


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="shown once: sign-checking key")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    event = serializers.CharField(source="notification.kind")
    subject = serializers.CharField(source="notification.subject")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "subject",
            "channel",
            "webhook",
            "target",
            "state",
            "attempts",
            "status_code",
            "last_error",
            "replay_of",
            "created_at",
            "attempted_at",
            "delivered_at",
        ]


class FollowSerializer(serializers.ModelSerializer[Follow]):
    analysis = serializers.CharField(source="analysis.slug")

    class Meta:
        model = Follow
        fields = ["analysis", "created_at"]


def user_of(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # IsAuthenticated
    return request.user


class PreferenceDetail(APIView):
    """What you are told of, and whether by e-mail (webhooks get everything
    you are told of)."""

    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=PreferenceSerializer)
    def get(self, request: HttpRequest) -> Response:
        found = services.preference_get(user_of(request))
        return Response(PreferenceSerializer(found).data)

    @extend_schema(request=PreferenceUpdateSerializer, responses=PreferenceSerializer)
    def patch(self, request: HttpRequest) -> Response:
        given = PreferenceUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        updated = services.preference_update(user_of(request), **given.validated_data)
        return Response(PreferenceSerializer(updated).data)


class WebhookListCreate(APIView):
    """Your webhooks; register a new one (its secret is shown once, here)."""

    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request: HttpRequest) -> Response:
        hooks = selectors.webhooks_of(user_of(request))
        return Response(WebhookSerializer(hooks, many=True).data)

    @extend_schema(
        request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer}
    )
    def post(self, request: HttpRequest) -> Response:
        given = WebhookCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        webhook, secret = services.webhook_create(
            user_of(request), given.validated_data["url"]
        )
        body = {**WebhookSerializer(webhook).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDelete(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: HttpRequest, webhook_id: str) -> Response:
        services.webhook_delete(user_of(request), webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryList(APIView):
    """Every delivery of your notifications, newest first."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=list(Delivery.State.values))],
        responses=page_of(DeliverySerializer, "DeliveryPage"),
    )
    def get(self, request: HttpRequest) -> Response:
        found = selectors.deliveries_of(
            user_of(request), request.query_params.get("state", "")
        )
        paginator = StrictLimitOffsetPagination()
        page = paginator.paginate_queryset(found, request, view=self)
        return paginator.get_paginated_response(
            DeliverySerializer(page, many=True).data
        )


class DeliveryReplay(APIView):
    """Send a delivery again (a new delivery; the old one keeps its record)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request: HttpRequest, delivery_id: str) -> Response:
        replay = services.delivery_replay(user_of(request), delivery_id)
        replay.refresh_from_db()
        return Response(
            DeliverySerializer(replay).data, status=status.HTTP_202_ACCEPTED
        )


class FollowList(APIView):
    """The analyses you follow."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=FollowSerializer(many=True))
    def get(self, request: HttpRequest) -> Response:
        follows = selectors.follows_of(user_of(request))
        return Response(FollowSerializer(follows, many=True).data)


class AnalysisFollow(APIView):
    """Follow an analysis: hear when its reproducibility check changes verdict."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={201: FollowSerializer})
    def post(self, request: HttpRequest, slug: str) -> Response:
        analysis = analysis_get(slug, request.user)
        follow = services.follow_add(user_of(request), analysis)
        return Response(FollowSerializer(follow).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: HttpRequest, slug: str) -> Response:
        analysis = analysis_get(slug, request.user)
        services.follow_remove(user_of(request), analysis)
        return Response(status=status.HTTP_204_NO_CONTENT)
