"""`recast serve`: gunicorn in front of the platform, in one process, so that
its in-process runner threads share it when no broker is configured."""

from __future__ import annotations

import os
import sys

from django.conf import settings


def serve(host: str, port: int, workers: int) -> None:
    if not settings.CELERY_BROKER_URL:
        os.environ["RECAST_INPROCESS_WORKERS"] = str(workers)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "recast.wsgi:application",
        "--bind",
        f"{host}:{port}",
        "--workers",
        "1",  # one process: background runs live in it
        "--threads",
        "8",
        "--access-logfile",
        "-",
    ]
    os.execv(sys.executable, command)  # noqa: S606 (a fixed argument list, no shell)
