"""Making, checking and revoking API tokens.

A token is ``rc_<prefix>_<secret>``: the prefix finds the row, and the sha256
of the whole token is compared in constant time. Tokens carry 256 bits of
randomness, so a plain hash suffices (a password hash guards guessable input).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from recast.accounts.models import ApiToken
from recast.core.errors import NotFound

logger = logging.getLogger(__name__)
PREFIX = "rc_"
LAST_USED_EVERY = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(
    user: User, name: str = "", days: int | None = 90
) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns the row and the token, which is never
    stored and cannot be shown again."""
    prefix = secrets.token_hex(6)
    token = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    expires = timezone.now() + timedelta(days=days) if days else None
    row = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, digest=digest(token), expires_at=expires
    )
    logger.info("token %s… made for user %s", prefix, user.pk)
    return row, token


def token_user(token: str) -> User | None:
    """The active user a valid, unexpired, unrevoked token belongs to, or None."""
    parts = token.split("_")
    if len(parts) < 3 or not token.startswith(PREFIX):
        return None
    # The prefix is unique: its one row is read unordered (first() would sort
    # by id) and checked here, which costs Django less to compile than the
    # revoked-or-expired filter in SQL; every request pays it.
    found = ApiToken.objects.select_related("user").filter(prefix=parts[1])
    row = next(iter(found.order_by()[:1]), None)
    now = timezone.now()
    if row is None or not token_usable(row, now):
        return None
    if not hmac.compare_digest(row.digest, digest(token)):
        return None
    last_used_touch(row, now)
    return row.user


def token_usable(row: ApiToken, now: datetime) -> bool:
    """Not revoked, not expired, and its user still active."""
    if row.revoked_at is not None:
        return False
    if row.expires_at is not None and row.expires_at <= now:
        return False
    return row.user.is_active


def last_used_touch(row: ApiToken, now: datetime) -> None:
    """Record that the token was used, at most once a LAST_USED_EVERY per
    token: a write on every request would cost more than most answers, and
    a token's last use is shown to the minute. Conditional, so that clients
    using one token at once write it once."""
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_EVERY:
        return
    fresh = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    ApiToken.objects.filter(fresh, pk=row.pk).update(last_used_at=now)


def token_revoke(user: User, prefix: str) -> None:
    moved = ApiToken.objects.filter(
        user=user, prefix=prefix, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if not moved:
        raise NotFound(f"no active token {prefix} of yours")
