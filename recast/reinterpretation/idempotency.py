"""Submit at most once per Idempotency-Key.

A client that lost the answer to a submit (a timeout, a dropped connection)
sends it again with the same key and gets the request it made the first time,
never a second copy. The same key with other points is a conflict. Two submits
with one key racing each other meet at the database's unique constraint.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import IntegrityError

from recast.catalogue.models import Analysis
from recast.core.errors import Conflict, InvalidInput
from recast.quotas.services import owner_serialised
from recast.reinterpretation.inputs import PointInputs
from recast.reinterpretation.models import Request
from recast.reinterpretation.services import request_submit
from recast.reinterpretation.submission import within_quota

KEY = re.compile(r"[\x21-\x7e]{1,200}")


def key_check(key: str) -> str:
    if not KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key: must be 1 to 200 printable ASCII characters without "
            "spaces (a UUID is a good key)"
        )
    return key


def fingerprint(analysis: Analysis, points: Sequence[PointInputs]) -> str:
    """A digest of what was asked: the analysis and each point's name and inputs."""
    asked = [analysis.slug, [[p.point, p.inputs] for p in points]]
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def earlier(owner: User, key: str, digest: str) -> Request | None:
    found = Request.objects.filter(owner=owner, idempotency_key=key).first()
    if found is not None and found.fingerprint != digest:
        raise Conflict(
            f"Idempotency-Key '{key}' was used for another request ({found.id}); "
            "use a new key for a new request"
        )
    return found


def request_accept(
    analysis: Analysis,
    points: Sequence[PointInputs],
    owner: User | None,
    key: str | None = None,
    use_cache: bool = True,
) -> tuple[Request, bool]:
    """What the API and the portal do with checked points: a new request (True)
    within the owner's quotas, or, for a repeated ``key``, the request made with
    it the first time (False)."""
    if key is None or owner is None:
        with owner_serialised(owner):
            within_quota(owner, points)
            request = request_submit(analysis, points, owner=owner, use_cache=use_cache)
        return request, True
    return request_submit_once(analysis, points, owner, key, use_cache)


def request_submit_once(
    analysis: Analysis,
    points: Sequence[PointInputs],
    owner: User,
    key: str,
    use_cache: bool = True,
) -> tuple[Request, bool]:
    """The request made with ``key`` (False) or a new one (True)."""
    digest = fingerprint(analysis, points)
    found = earlier(owner, key, digest)
    if found is not None:
        return found, False

    try:
        with owner_serialised(owner):
            # Only a new request counts against the quotas: a replay costs
            # nothing.
            within_quota(owner, points)
            created = request_submit(
                analysis,
                points,
                owner=owner,
                use_cache=use_cache,
                idempotency_key=key,
                fingerprint=digest,
            )
    except IntegrityError:
        # Another submit with this key committed first: answer with its request.
        found = earlier(owner, key, digest)
        if found is None:
            raise
        return found, False
    return created, True
