from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from recast.accounts.services import token_create


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, token = token_create(user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("root", is_staff=True)


@pytest.fixture
def team_member(db: None) -> User:
    user = User.objects.create_user("carol")
    user.groups.add(Group.objects.get_or_create(name="stop-team")[0])
    return user


@pytest.fixture
def as_alice(alice: User) -> APIClient:
    return client_for(alice)


def error(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["message"]
