"""DRF authentication by ``Authorization: Bearer <token>`` (or ``Token <token>``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from recast.accounts.services import token_user


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        header = (
            authentication.get_authorization_header(request)
            .decode(errors="replace")
            .split()
        )
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "the Authorization header must be 'Bearer <token>'"
            )
        user = token_user(header[1])
        if user is None:
            raise exceptions.AuthenticationFailed(
                "the token is unknown, expired or revoked"
            )
        return user, None

    def authenticate_header(self, request: Any) -> str:
        return "Bearer"
