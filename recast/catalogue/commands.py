"""What `manage.py catalogue_load` and `recast catalogue load` share."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings

from recast.catalogue.services import catalogue_load


def load_and_report(root: Path | None, slugs: list[str]) -> int:
    """Load, print one line per entry on stderr, and return the exit code."""
    outcomes = catalogue_load(Path(root or settings.WORKFLOWS_DIR), slugs or None)
    for outcome in outcomes:
        if outcome.error:
            sys.stderr.write(f"error: {outcome.error}\n")
        else:
            change = "new workflow version" if outcome.created else "unchanged"
            sys.stderr.write(
                f"loaded {outcome.slug}: workflow v{outcome.version} ({change})\n"
            )
    if not outcomes:
        sys.stderr.write("no analysis folders found\n")
    return 2 if any(o.error for o in outcomes) else 0
