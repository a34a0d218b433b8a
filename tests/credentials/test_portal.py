"""The portal's credentials page: add (the value never comes back), list,
refuse a bad one at its field, delete."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from recast.credentials.models import Credential
from tests.portal.test_pages import field_error, html

VALUE = "s3-secret-Wd9Kq2Lm"  # made up


@pytest.fixture
def signed_in(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("alice"))
    return client


def test_a_credential_added_in_the_portal_is_listed_without_its_value(
    signed_in: Client,
) -> None:
    added = signed_in.post(
        "/credentials/", {"name": "s3-keys", "value": VALUE, "description": "bucket"}
    )
    page = html(signed_in.get("/credentials/"))

    assert added.status_code == 302
    assert "<code>s3-keys</code>" in page and "<td>bucket</td>" in page
    assert VALUE not in page
    assert Credential.objects.get().name == "s3-keys"


def test_a_bad_credential_is_shown_at_its_field_and_its_value_not_echoed(
    signed_in: Client,
) -> None:
    short = html(signed_in.post("/credentials/", {"name": "ok", "value": "tiny"}))
    signed_in.post("/credentials/", {"name": "dup", "value": VALUE})
    twice = html(signed_in.post("/credentials/", {"name": "dup", "value": VALUE}))

    assert field_error(short, "value") == ("must be a string of 8 to 16384 characters")
    assert field_error(twice, "name").startswith(
        "you have a credential named &#x27;dup&#x27; already"
    )
    assert VALUE not in twice
    assert list(Credential.objects.values_list("name", flat=True)) == ["dup"]


def test_a_credential_is_deleted_from_the_portal(signed_in: Client) -> None:
    signed_in.post("/credentials/", {"name": "eos", "value": VALUE})

    deleted = signed_in.post("/credentials/eos/delete/")

    assert deleted.status_code == 302
    assert not Credential.objects.exists()
    assert signed_in.post("/credentials/eos/delete/").status_code == 404
