from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from recast.quotas.services import runs_release_all


class Command(BaseCommand):
    help = (
        "Hand out again the runs left waiting at their owner's running limit "
        "that now fit (for cron; celery beat does it every minute)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        run_ids = runs_release_all()
        self.stdout.write(f"{len(run_ids)} waiting run(s) handed to the workers")
