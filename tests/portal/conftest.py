from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="wonderland-1865")


@pytest.fixture
def signed_in(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client
