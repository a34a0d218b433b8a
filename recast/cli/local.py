"""Helpers of the local (serverless) commands: Django on the embedded defaults."""

from __future__ import annotations

import logging
import os
import sys


def django_setup(quiet: bool = False) -> None:
    """Start Django and bring the database schema up to date (cheap when it is)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    progress_to_stderr(quiet)


def progress_to_stderr(quiet: bool) -> None:
    """One line per step on stderr, so stdout stays machine-readable."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("recast.reinterpretation", "recast.engine"):
        log = logging.getLogger(name)
        log.handlers = [handler]
        log.propagate = False
        log.setLevel(logging.WARNING if quiet else logging.INFO)
