"""Writes of credentials: add, delete, attach to a request, rotate the key."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from recast.catalogue.models import Analysis
from recast.core.errors import Conflict, InvalidInput, NotFound
from recast.credentials import crypto
from recast.credentials.models import Credential, CredentialUse
from recast.notifications.models import Webhook
from recast.reinterpretation.idempotency import request_accept
from recast.reinterpretation.inputs import PointInputs
from recast.reinterpretation.models import Request

logger = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_RULE = (
    "a credential's name is 1 to 64 lower-case letters, digits, '-' or '_', "
    "starting with a letter or digit"
)
# Shorter values would be scrubbed from logs everywhere they happen to occur
# (a four-letter token matches ordinary words) and are no credential anyway.
MIN_VALUE = 8
MAX_VALUE = 16_384
VALUE_LENGTH_RULE = f"must be a string of {MIN_VALUE} to {MAX_VALUE} characters"
VALUE_SPACE_RULE = "must not start or end with white space or hold a NUL"
# The same rules as patterns, for the API's schema.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VALUE_PATTERN = r"^[^\s\x00]([^\x00]*[^\s\x00])?$"


def name_check(name: Any, field: str = "$.name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(f"{field}: {NAME_RULE}")
    return name


def value_check(value: Any) -> str:
    if not isinstance(value, str) or not MIN_VALUE <= len(value) <= MAX_VALUE:
        raise InvalidInput(f"$.value: {VALUE_LENGTH_RULE}")
    if value != value.strip() or "\x00" in value:
        raise InvalidInput(f"$.value: {VALUE_SPACE_RULE}")
    return value


def credential_create(
    owner: User, name: Any, value: Any, description: str = ""
) -> Credential:
    """Store ``value`` encrypted under ``name``; raises InvalidInput for a bad
    name or value, Conflict when the owner has a credential of that name."""
    name, value = name_check(name), value_check(value)
    try:
        with transaction.atomic():
            credential = Credential.objects.create(
                owner=owner,
                name=name,
                description=description,
                ciphertext=crypto.encrypt(value),
            )
    except IntegrityError:
        raise Conflict(
            f"$.name: you have a credential named '{name}' already; delete it first "
            "to replace it"
        ) from None
    logger.info("credential %s of user %s stored", name, owner.pk)
    return credential


def credential_delete(owner: User, name: str) -> None:
    deleted, _ = Credential.objects.filter(owner=owner, name=name).delete()
    if not deleted:
        raise NotFound(f"you have no credential named '{name}'")
    logger.info("credential %s of user %s deleted", name, owner.pk)


def credential_names_check(owner: User | None, names: Any) -> list[str]:
    """The names a submission's ``credentials`` field gives, each one of the
    owner's credentials; raises InvalidInput naming the failing entry."""
    if names in (None, "", []):
        return []
    if isinstance(names, str):
        # A multipart form sends one string: a JSON list or names with commas.
        names = parsed_names(names)
    if not isinstance(names, list):
        raise InvalidInput("$.credentials: must be a list of credential names")
    if owner is None:
        raise InvalidInput("$.credentials: only a signed-in user has credentials")
    known = set(Credential.objects.filter(owner=owner).values_list("name", flat=True))
    for index, name in enumerate(names):
        field = f"$.credentials[{index}]"
        name_check(name, field)
        if name not in known:
            raise InvalidInput(
                f"{field}: you have no credential named '{name}' (add it with "
                "`recast credentials add` or POST /api/v1/credentials/)"
            )
    if len(set(names)) != len(names):
        raise InvalidInput("$.credentials: a credential is named twice")
    return list(names)


def parsed_names(text: str) -> Any:
    if not text.lstrip().startswith("["):
        return [part.strip() for part in text.split(",")]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"$.credentials: not valid JSON ({exc})") from None


def request_accept_using(
    analysis: Analysis,
    points: Sequence[PointInputs],
    owner: User | None,
    names: Sequence[str],
    key: str | None = None,
    use_cache: bool = True,
) -> tuple[Request, bool]:
    """request_accept, with the request's credentials (checked names) recorded
    in the same transaction, so its runs, queued when it commits, find them.
    A replay of an idempotency key keeps the first request's credentials."""
    if not names:
        return request_accept(analysis, points, owner, key, use_cache)
    with transaction.atomic():
        created, new = request_accept(analysis, points, owner, key, use_cache)
        if new:
            credentials_attach(created, names)
    return created, new


def credentials_attach(request: Request, names: Sequence[str]) -> None:
    """Record that ``request``'s steps get these credentials (names checked
    by credential_names_check). Call it in the transaction that creates the
    request: its runs are queued when that commits, and must find the rows."""
    CredentialUse.objects.bulk_create(
        CredentialUse(request=request, name=name) for name in names
    )


def credentials_rotate() -> int:
    """Encrypt every stored credential and webhook secret again under the
    newest key, so the older keys can be dropped; returns how many were
    rewritten. Call it in a transaction (the rows are locked until it ends)."""
    count = 0
    for credential in Credential.objects.select_for_update().iterator():
        credential.ciphertext = crypto.rotate(credential.ciphertext)
        credential.save(update_fields=["ciphertext"])
        count += 1
    for webhook in Webhook.objects.select_for_update().iterator():
        webhook.secret_ciphertext = crypto.rotate(webhook.secret_ciphertext)
        webhook.save(update_fields=["secret_ciphertext"])
        count += 1
    logger.info("re-encrypted %d secret(s) under the newest key", count)
    return count
