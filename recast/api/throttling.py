"""A rate limit per client address, whoever is signed in.

DRF limits anonymous clients by address and signed-in ones by user; this
limit applies to both, so that one address cannot spread a flood over many
tokens. The address is the connection's, or the one a trusted proxy reports
(``RECAST_NUM_PROXIES``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:
    # Only for the annotations: DRF's settings import this module while
    # rest_framework.views is still loading.
    from rest_framework.request import Request
    from rest_framework.views import APIView


class AddressRateThrottle(SimpleRateThrottle):
    scope = "address"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {
            "scope": self.scope,
            "ident": self.get_ident(request),
        }
