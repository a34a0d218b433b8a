"""The API of credentials: add, list (names only, never values), delete."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request as HttpRequest
from rest_framework.response import Response
from rest_framework.views import APIView

from recast.api.notifications import user_of
from recast.api.serializers import StrictCharField
from recast.credentials import selectors, services
from recast.credentials.models import Credential


class CredentialSerializer(serializers.ModelSerializer[Credential]):
    class Meta:
        model = Credential
        fields = ["name", "description", "created_at"]


class StrictRegexField(serializers.RegexField):
    """A string matching the pattern, and only a string (DRF reads 0 as "0")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string")
        return str(super().to_internal_value(data))


class CredentialCreateSerializer(serializers.Serializer[Any]):
    """The service checks the name and value again with the same messages."""

    name = StrictRegexField(
        services.NAME_PATTERN,
        max_length=64,
        error_messages={"invalid": services.NAME_RULE},
        help_text="lower-case letters, digits, '-' and '_'",
    )
    value = StrictRegexField(
        services.VALUE_PATTERN,
        min_length=services.MIN_VALUE,
        max_length=services.MAX_VALUE,
        trim_whitespace=False,
        write_only=True,
        error_messages={
            "invalid": services.VALUE_SPACE_RULE,
            "min_length": services.VALUE_LENGTH_RULE,
            "max_length": services.VALUE_LENGTH_RULE,
        },
        help_text="the secret; stored encrypted, never shown again",
    )
    description = StrictCharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class CredentialListCreate(APIView):
    """Your credentials for private inputs (names only); store a new one."""

    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=CredentialSerializer(many=True))
    def get(self, request: HttpRequest) -> Response:
        found = selectors.credentials_of(user_of(request))
        return Response(CredentialSerializer(found, many=True).data)

    @extend_schema(
        request=CredentialCreateSerializer, responses={201: CredentialSerializer}
    )
    def post(self, request: HttpRequest) -> Response:
        given = CredentialCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        credential = services.credential_create(
            user_of(request),
            given.validated_data["name"],
            given.validated_data["value"],
            given.validated_data["description"],
        )
        return Response(
            CredentialSerializer(credential).data, status=status.HTTP_201_CREATED
        )


class CredentialDelete(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: HttpRequest, name: str) -> Response:
        services.credential_delete(user_of(request), name)
        return Response(status=status.HTTP_204_NO_CONTENT)
