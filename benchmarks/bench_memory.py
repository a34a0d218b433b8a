"""4e: peak memory per worker during a scan, against an idle worker.

A scan of the demo analysis (or of a published likelihood, see below) is
submitted to a fresh embedded platform (SQLite in a temporary folder) and cut
into batches as the dispatcher does for ``RECAST_SCAN_SLOTS`` workers. Each
worker is a process of its own that executes its batches exactly as a Celery
worker process does (``execution.runs_execute``). Its memory is sampled ten
times a second as the resident set of the worker and every process under it
(the step processes of its batch), and the peak is compared with the same
worker measured idle (platform loaded, before its first batch).

Settings (environment): ``BENCH_MEMORY_POINTS`` (default 8),
``BENCH_MEMORY_WORKERS`` (default 2), and ``BENCH_MEMORY_LIKELIHOOD``: a
folder with ``BkgOnly.json`` and ``patchset.json`` (for example
../shared/data/atlas-1lbb) to scan that likelihood instead of the demo.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # (installed with yadage; no stubs)

from benchmarks.report import Report

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30
MIB = 1 << 20
SAMPLE_SECONDS = 0.1


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its descendants now."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        # A step process ended while its parent's children were listed.
        return 0
    for member in members:
        # A step process may end between the listing and the reading.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


def worker_main(run_ids: list[str]) -> None:
    """The worker process: load the platform, say so, wait, run the batches."""
    import django

    django.setup()
    from recast.reinterpretation import execution

    print("ready", flush=True)
    sys.stdin.readline()
    for batch in run_ids:
        execution.runs_execute(batch.split(","))
    print("done", flush=True)


def environment(var: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recast.settings",
        "RECAST_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'recast.sqlite3'}",
        "RECAST_LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "",
    }


def prepare(var: Path, points: int, workers: int) -> tuple[str, list[list[str]]]:
    """Set up the platform in ``var``; return the scanned analysis and the
    batches (lists of run ids) as the dispatcher would hand them out."""
    script = f"""
import json, os, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
call_command("migrate", verbosity=0)
from recast.catalogue.services import catalogue_load
from recast.catalogue.likelihood import likelihood_add
from recast.reinterpretation.dispatch import batch_plan
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.services import request_submit
settings.RECAST_SCAN_SLOTS = {workers}
folder = os.environ.get("BENCH_MEMORY_LIKELIHOOD")
if folder:
    analysis, _ = likelihood_add(
        "bench-likelihood", Path(folder, "BkgOnly.json"), Path(folder, "patchset.json")
    )
else:
    catalogue_load(Path(settings.WORKFLOWS_DIR), ["demo-stop-1l"])
    from recast.catalogue.models import Analysis
    analysis = Analysis.objects.get(slug="demo-stop-1l")
names = [p["metadata"]["name"] for p in json.loads(
    Path(folder or "workflows/demo-stop-1l/data", "patchset.json").read_text()
)["patches"]][:{points}]
request = request_submit(
    analysis, [check_point(analysis, {{"patch": n}}) for n in names], enqueue_runs=False
)
ids = [str(r.id) for r in request.runs.all()]
print(json.dumps({{"analysis": analysis.slug, "plan": batch_plan(ids)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=environment(var),
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(done.stdout.strip().splitlines()[-1])
    return str(document["analysis"]), list(document["plan"])


def share(plan: list[list[str]], workers: int) -> list[list[str]]:
    """The batches each worker takes, in turn (as workers with a prefetch of
    one take the next task when they finish one, to a first approximation)."""
    return [[",".join(b) for b in plan[i::workers]] for i in range(workers)]


def measure(var: Path, shares: list[list[str]]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--worker"]
    processes = [
        subprocess.Popen(
            [*command, *batches],
            cwd=REPO,
            env=environment(var),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for batches in shares
        if batches
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    time.sleep(1.0)  # settle: the idle figure is the platform loaded, at rest
    watched = [psutil.Process(p.pid) for p in processes]
    idle = [tree_rss(w) for w in watched]
    peak = list(idle)

    started = time.monotonic()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    while any(p.poll() is None for p in processes):
        for index, process in enumerate(watched):
            peak[index] = max(peak[index], tree_rss(process))
        time.sleep(SAMPLE_SECONDS)
    seconds = time.monotonic() - started
    failed = [p.returncode for p in processes if p.returncode]
    if failed:
        raise RuntimeError(f"a worker exited with {failed}")
    return {"idle": idle, "peak": peak, "seconds": seconds}


def statuses(var: Path) -> dict[str, int]:
    script = (
        "import django, json; django.setup();"
        "from django.db.models import Count;"
        "from recast.reinterpretation.models import Run;"
        "rows = Run.objects.values('status').annotate(n=Count('id'));"
        "print(json.dumps({r['status']: r['n'] for r in rows}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=environment(var),
        capture_output=True,
        text=True,
        check=True,
    )
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def main() -> Report:
    points = int(os.environ.get("BENCH_MEMORY_POINTS", "8"))
    workers = int(os.environ.get("BENCH_MEMORY_WORKERS", "2"))
    with tempfile.TemporaryDirectory(prefix="recast-bench-memory-") as folder:
        var = Path(folder)
        analysis, plan = prepare(var, points, workers)
        figures = measure(var, share(plan, workers))
        counts = statuses(var)

    peak, idle = max(figures["peak"]), max(figures["idle"])
    report = Report("memory")
    report.figures = {
        "analysis": analysis,
        "points": points,
        "workers": workers,
        "batches": len(plan),
        "points_per_batch": max(len(b) for b in plan),
        "succeeded": counts.get("succeeded", 0),
        "idle_worker_mib": round(idle / MIB, 1),
        "peak_worker_mib": round(peak / MIB, 1),
        "peak_per_worker_mib": [round(p / MIB, 1) for p in figures["peak"]],
        "peak_over_idle": round(peak / idle, 2),
        "scan_seconds": round(figures["seconds"], 1),
    }
    report.targets = {"peak_worker_mib": "under 1024 MiB per worker"}
    report.met = {"peak_worker_mib": peak < GIB}
    report.notes = [
        "memory: resident set of each worker process plus every process under "
        "it (its step processes), sampled every 0.1 s; the baseline is the same "
        "worker idle (platform loaded, before its first batch), in the same run",
        "each worker runs its batches as a Celery worker process does "
        "(recast.reinterpretation.execution.runs_execute); batches cut by the "
        f"dispatcher for {workers} slots",
    ]
    if counts.get("succeeded", 0) != points:
        report.notes.append(f"not every point succeeded: {counts}")
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
    else:
        from benchmarks.report import show

        show(main())
