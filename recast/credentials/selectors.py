"""Reads of credentials. Values leave the database only through
``request_credentials``, for the worker that runs the request's steps."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db.models import QuerySet

from recast.credentials import crypto
from recast.credentials.models import Credential, CredentialUse
from recast.reinterpretation.models import Request


class CredentialUnavailable(Exception):
    """A credential a request names is gone, or cannot be decrypted."""


def credentials_of(owner: User) -> QuerySet[Credential]:
    return Credential.objects.filter(owner=owner).defer("ciphertext")


def request_credential_names(request_id: uuid.UUID | str) -> list[str]:
    return list(
        CredentialUse.objects.filter(request_id=request_id).values_list(
            "name", flat=True
        )
    )


def request_credentials(request_id: uuid.UUID | str) -> dict[str, str]:
    """Name -> value of each credential the request names, decrypted, from
    its owner's store; raises CredentialUnavailable when one is gone."""
    names = request_credential_names(request_id)
    if not names:
        return {}
    owner = Request.objects.filter(id=request_id).values_list("owner_id", flat=True)
    found = Credential.objects.filter(owner_id__in=owner, name__in=names)
    stored = dict(found.values_list("name", "ciphertext"))
    missing = sorted(set(names) - set(stored))
    if missing:
        raise CredentialUnavailable(
            f"the request's credential {', '.join(missing)} was deleted before its "
            "steps ran; add it again and resubmit"
        )
    try:
        return {name: crypto.decrypt(ciphertext) for name, ciphertext in stored.items()}
    except crypto.Undecryptable as exc:
        raise CredentialUnavailable(str(exc)) from None
