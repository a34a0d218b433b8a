from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recast.core.errors import RecastError
from recast.quotas.selectors import limits_for
from recast.quotas.services import quota_clear, quota_set


def limit(value: str) -> int | str:
    """A whole number (0: no limit) or "inherit"."""
    if value == "inherit":
        return value
    if not value.isdigit():
        raise ValueError(value)
    return int(value)


class Command(BaseCommand):
    help = (
        "Set the limits of a user or a group: points running at once, points "
        "queued, CPU seconds per month (0: no limit; inherit: from the groups "
        "or the settings). Prints the limits now in force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--user", help="a user name")
        owner.add_argument("--group", help="a group name")
        parser.add_argument("--max-running", type=limit, metavar="N|inherit")
        parser.add_argument("--max-queued", type=limit, metavar="N|inherit")
        parser.add_argument("--cpu-seconds-month", type=limit, metavar="N|inherit")
        parser.add_argument(
            "--clear", action="store_true", help="inherit every limit again"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = self.owner(options)
        if options["clear"]:
            quota_clear(owner)
        else:
            names = ("max_running", "max_queued", "cpu_seconds_month")
            given = {
                name: None if options[name] == "inherit" else options[name]
                for name in names
                if options[name] is not None
            }
            try:
                quota_set(owner, given)
            except RecastError as exc:
                raise CommandError(exc.message) from None
        if isinstance(owner, User):
            self.stdout.write(json.dumps(limits_for(owner).as_dict()))

    def owner(self, options: dict[str, Any]) -> User | Group:
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user '{options['user']}'")
            return user
        group = Group.objects.filter(name=options["group"]).first()
        if group is None:
            raise CommandError(f"no group '{options['group']}'")
        return group
