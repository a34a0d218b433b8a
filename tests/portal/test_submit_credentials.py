"""The submit form's credentials: the signed-in user's own, by name, handed
to the same service the API uses, and a name they do not have refused at the
field with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from recast.catalogue.models import Analysis
from recast.credentials.models import Credential, CredentialUse
from recast.credentials.selectors import request_credential_names
from recast.credentials.services import credential_create
from recast.portal import views
from recast.reinterpretation.models import Request
from tests.conftest import DEMO
from tests.portal.test_pages import field_error, html

VALUE = "eos-secret-Qx7Lp3Vb"  # made up
SUBMIT = f"/analyses/{DEMO}/submit/"
POINT = {"mode": "point", "input_patch": "stop_550_100"}


@pytest.fixture
def bob(db: None) -> User:
    user = User.objects.create_user("bob")
    credential_create(user, "bob-s3", "bob-secret-Zr4Nc8Ty")
    return user


def test_the_form_offers_my_credentials_by_name_only(
    demo: Analysis, alice: User, bob: User, signed_in: Client
) -> None:
    credential_create(alice, "eos-token", VALUE, "EOS for the ntuples")
    credential_create(alice, "a-keys", "a-secret-Hv2Kd9Wq")

    page = html(signed_in.get(SUBMIT))

    assert 'name="credentials" value="a-keys"' in page
    assert 'name="credentials" value="eos-token"' in page
    assert page.index('value="a-keys"') < page.index('value="eos-token"')
    assert "bob-s3" not in page and VALUE not in page
    assert 'id="no-credentials"' not in page


def test_without_credentials_the_form_points_to_the_credentials_page(
    demo: Analysis, signed_in: Client
) -> None:
    page = html(signed_in.get(SUBMIT))

    assert 'id="field-credentials"' in page
    assert 'id="no-credentials"' in page and 'href="/credentials/"' in page


@pytest.mark.django_db(transaction=True)  # runs are queued when it commits
def test_a_point_is_submitted_with_the_chosen_credential_recorded(
    demo: Analysis, alice: User, signed_in: Client, queued: list[str]
) -> None:
    credential_create(alice, "eos-token", VALUE)
    credential_create(alice, "s3-keys", "s3-secret-Hv2Kd9Wq")

    response = signed_in.post(SUBMIT, {**POINT, "credentials": ["eos-token"]})

    request = Request.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{request.id}/"
    assert request_credential_names(request.id) == ["eos-token"]
    assert queued == [str(request.runs.get().id)]


def test_another_users_credential_is_refused_at_the_field_and_nothing_stored(
    demo: Analysis, alice: User, bob: User, signed_in: Client, queued: list[str]
) -> None:
    credential_create(alice, "eos-token", VALUE)

    response = signed_in.post(SUBMIT, {**POINT, "credentials": ["eos-token", "bob-s3"]})

    assert response.status_code == 400
    assert field_error(html(response), "credentials") == (
        "you have no credential named &#x27;bob-s3&#x27; (deleted? add it again "
        "on the Credentials page)"
    )
    assert not Request.objects.exists() and not CredentialUse.objects.exists()
    assert queued == []


def test_a_credential_deleted_while_the_form_is_checked_is_refused_at_the_field(
    demo: Analysis,
    alice: User,
    signed_in: Client,
    queued: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential_create(alice, "eos-token", VALUE)
    checked = views.submitted_points

    def deleted_meanwhile(*args: Any) -> Any:
        # The form's choices were read; the service's own check comes next.
        Credential.objects.filter(owner=alice, name="eos-token").delete()
        return checked(*args)

    monkeypatch.setattr(views, "submitted_points", deleted_meanwhile)
    response = signed_in.post(SUBMIT, {**POINT, "credentials": ["eos-token"]})

    assert response.status_code == 400
    assert field_error(html(response), "credentials").startswith(
        "$.credentials[0]: you have no credential named &#x27;eos-token&#x27;"
    )
    assert not Request.objects.exists() and queued == []
