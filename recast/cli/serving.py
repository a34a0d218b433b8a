"""`recast serve`: gunicorn in front of the platform.

Several worker processes (one per core by default, each with a few threads)
share the API's load: one Python process holds one core at most. With no
broker, each process also runs what it accepts on background runner threads
of its own; a run is started by a conditional update of its row, so two
processes never both run it.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.db import connections

from recast.reinterpretation.services import runs_interrupted_requeue

# Kept connections save each answer a PostgreSQL connection (a backend process
# started per request), which costs more than most answers; on a busy machine
# opening one took hundreds of milliseconds, the slowest answers under load.
# Health checks (settings) replace one the database dropped.
SERVE_CONN_MAX_AGE = "600"


def gunicorn_command(host: str, port: int, processes: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "recast.wsgi:application",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(processes),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--access-logfile",
        "-",
    ]


def serve(host: str, port: int, workers: int, processes: int, threads: int) -> None:
    if not settings.CELERY_BROKER_URL:
        os.environ["RECAST_INPROCESS_WORKERS"] = str(workers)
        # Before any worker process exists: a run left running was interrupted
        # with the previous server. Done here, once, and not by each process
        # as it starts, which would take live runs from its siblings.
        runs_interrupted_requeue()
    connections.close_all()  # gunicorn's processes open their own
    os.environ.setdefault("RECAST_DB_CONN_MAX_AGE", SERVE_CONN_MAX_AGE)
    command = gunicorn_command(host, port, processes, threads)
    os.execv(sys.executable, command)  # noqa: S606 (a fixed argument list, no shell)
