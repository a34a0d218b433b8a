from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recast.catalogue.commands import load_and_report


class Command(BaseCommand):
    help = "Check and load the preserved analyses under the workflows folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="load only these analyses")
        parser.add_argument("--root", type=Path, help="the workflows folder")

    def handle(self, *args: Any, **options: Any) -> None:
        code = load_and_report(options["root"], options["slugs"])
        if code:
            raise CommandError("some analyses were not loaded", returncode=code)
