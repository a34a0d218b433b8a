"""API tokens: shown once, stored hashed, expiring and revocable."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from recast.accounts.models import ApiToken
from recast.accounts.services import token_create, token_revoke, token_user
from recast.core.errors import NotFound


@pytest.mark.django_db
def test_create_token_prints_a_token_and_creates_the_user() -> None:
    out = io.StringIO()
    call_command("create_token", "dana", stdout=out, stderr=io.StringIO())

    token = out.getvalue().strip()
    row = ApiToken.objects.get()
    assert token.startswith(f"rc_{row.prefix}_")
    assert token_user(token) == User.objects.get(username="dana")


@pytest.mark.django_db
def test_only_a_hash_of_the_token_is_stored() -> None:
    _, token = token_create(User.objects.create_user("erin"))

    row = ApiToken.objects.get()
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(ApiToken.objects.values()))


@pytest.mark.django_db
def test_an_expired_token_is_refused() -> None:
    row, token = token_create(User.objects.create_user("fay"))
    ApiToken.objects.filter(pk=row.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert token_user(token) is None


@pytest.mark.django_db
def test_a_revoked_token_is_refused() -> None:
    user = User.objects.create_user("gil")
    row, token = token_create(user)

    token_revoke(user, row.prefix)

    assert token_user(token) is None
    with pytest.raises(NotFound, match=f"no active token {row.prefix} of yours"):
        token_revoke(user, row.prefix)


@pytest.mark.django_db
def test_a_token_that_expires_later_is_accepted() -> None:
    user = User.objects.create_user("ida")
    row, token = token_create(user)
    ApiToken.objects.filter(pk=row.pk).update(
        expires_at=timezone.now() + timedelta(minutes=1)
    )

    assert token_user(token) == user


@pytest.mark.django_db
def test_the_token_of_a_deactivated_user_is_refused() -> None:
    user = User.objects.create_user("ivo")
    _, token = token_create(user)

    User.objects.filter(pk=user.pk).update(is_active=False)

    assert token_user(token) is None


@pytest.mark.django_db
def test_a_token_with_a_wrong_secret_is_refused() -> None:
    _, token = token_create(User.objects.create_user("hal"))

    assert token_user(token[:-2] + "xx") is None
    assert token_user("not-a-token") is None


@pytest.mark.django_db
def test_a_user_signs_in_with_a_session_and_the_api_knows_them(client) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user("ivy", password="correct horse battery")

    page = client.get("/accounts/login/")
    signed_in = client.post(
        "/accounts/login/", {"username": "ivy", "password": "correct horse battery"}
    )

    assert page.status_code == 200 and b'<label for="id_username">' in page.content
    assert signed_in.status_code == 302
    assert client.get("/api/v1/requests/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_password_is_refused_on_the_page(client) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_user("jo", password="right")

    page = client.post("/accounts/login/", {"username": "jo", "password": "wrong"})

    assert page.status_code == 200
    assert b'role="alert"' in page.content


@pytest.mark.django_db
def test_a_token_records_its_use_at_most_once_a_minute() -> None:
    row, token = token_create(User.objects.create_user("hal"))

    token_user(token)
    first = ApiToken.objects.get(pk=row.pk).last_used_at
    token_user(token)
    assert first is not None
    assert ApiToken.objects.get(pk=row.pk).last_used_at == first

    # A minute later, the next use is recorded.
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first - timedelta(minutes=2))
    token_user(token)
    assert ApiToken.objects.get(pk=row.pk).last_used_at > first - timedelta(minutes=1)
