from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from recast.reinterpretation.services import runs_requeue_stale


class Command(BaseCommand):
    help = "Hand runs whose task may have been lost to the workers again (for cron)."

    def handle(self, *args: Any, **options: Any) -> None:
        run_ids = runs_requeue_stale()
        self.stdout.write(f"{len(run_ids)} run(s) handed to the workers again")
