"""Encrypt every stored secret again under the first of RECAST_CREDENTIALS_KEYS.

Rotation: put a new key first in RECAST_CREDENTIALS_KEYS (the old ones after
it, so that they still decrypt), restart, run this, then drop the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from recast.credentials import services


class Command(BaseCommand):
    help = "Re-encrypt stored credentials under the newest RECAST_CREDENTIALS_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            count = services.credentials_rotate()
        self.stdout.write(f"re-encrypted {count} secret(s) under the newest key")
