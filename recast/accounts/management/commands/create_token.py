from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser

from recast.accounts.services import token_create


class Command(BaseCommand):
    help = "Print a fresh API token for USERNAME, creating the user if needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the token")
        parser.add_argument(
            "--days", type=int, default=90, help="days until it expires (0: never)"
        )
        parser.add_argument(
            "--staff", action="store_true", help="make a new user staff"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user, created = User.objects.get_or_create(
            username=options["username"], defaults={"is_staff": options["staff"]}
        )
        if created:
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"created user {user.username}")
        _, token = token_create(user, options["name"], options["days"] or None)
        self.stdout.write(token)
