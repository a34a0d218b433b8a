"""Benchmark 4a: the 1Lbb scan end to end against a plain pyhf numpy loop.

The platform as an operator starts it on this machine for a scan: a fresh
platform (``recast serve``: gunicorn with one process per core, the runs
executed on in-process runner threads, one batch per core at a time; SQLite,
or ``RECAST_BENCH_DATABASE_URL``), the ATLAS SUSY-2019-08 likelihood
catalogued with ``recast catalogue add-likelihood``, and the scan submitted
as one request through ``POST /api/v1/requests/``. The time is from just
before the POST to the end the server recorded for the request. Afterwards
every point is checked: succeeded, its result stored (CLs observed and
expected), its archive on disk with the checksum the API reports, every file
of it intact (``archive_verify``).

In-process runners rather than Celery: the same batches and the same engine,
without a broker hop, which is what ``recast serve`` does on one machine; a
Celery deployment spreads the same batches over its workers.

The baseline is the loop a physicist would write (pyhf numpy backend, CLs at
mu = 1 with the expected band, one model per point), timed on a sample of the
submitted points spread over the grid, as many processes as cores, and
extrapolated to all points. The platform computes more per point (the six
upper limits and the plot grid as well), so the ratio is conservative;
with RECAST_BENCH_LIMITS=0 the scan is submitted with ``limits: false``
(CLs at mu = 1 and its expected band only, exactly the baseline's
quantities): the like-for-like ratio. The largest CLs deviation compares the
stored results with the baseline's points.

``RECAST_BENCH_STEPS=1`` also times the workflow's patch and fit steps
directly (one batch per core, no platform), the step-level figure.

Environment: RECAST_BENCH_POINTS (default all 125), RECAST_BENCH_BASELINE_POINTS
(default 4), RECAST_BENCH_LIMITS (1 or 0, default 1), RECAST_BENCH_STEPS
(default 0), RECAST_BENCH_DATABASE_URL,
RECAST_ENVS_DIR (the step environments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.report import Report
from benchmarks.server import Server, serve
from recast.archive.builder import MANIFEST, archive_verify, sha256_file

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
SLUG = "atlas-susy-2019-08"
FINISHED = ("succeeded", "failed", "cancelled")
# The request list's entry is small; the scan's detail (every run and step)
# is read once at the end, so that polling takes nothing from the fits.
POLL_SECONDS = 1.0
# How far apart the runs of one batch may stamp the same step.
BATCH_SPAN_SLACK = 0.5
RECAST = str(Path(sys.executable).with_name("recast"))
LBB = REPO.parent / "shared" / "data" / "atlas-1lbb"
RECIPE = REPO / "workflows" / "public-likelihood" / "images" / "pyhf"
BASELINE = Path(__file__).with_name("pyhf_baseline.py")
STEP_ENV = {"PATH": "/usr/bin:/bin", "MPLCONFIGDIR": tempfile.gettempdir()}


def step_python() -> Path:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")
    django.setup()
    from django.conf import settings

    from recast.catalogue.loader import recipe_sha256
    from recast.engine import environments

    image = {
        "name": "recast/pyhf",
        "tag": "bench",
        "recipe": str(RECIPE),
        "recipe_sha256": recipe_sha256(RECIPE),
    }
    venv, _ = environments.ensure(Path(settings.RECAST_ENVS_DIR), image)
    return venv / "bin" / "python"


def write_signals(folder: Path, limit: int | None) -> list[Path]:
    patches = json.loads((LBB / "patchset.json").read_text())["patches"][:limit]
    folder.mkdir(parents=True)
    signals = []
    for patch in patches:
        target = folder / f"{patch['metadata']['name']}.json"
        target.write_text(json.dumps(patch))
        signals.append(target)
    return signals


def shares(items: list[Path], cores: int) -> list[list[Path]]:
    return [items[i::cores] for i in range(cores)]


def in_parallel(commands: list[list[str]], env: dict[str, str] = STEP_ENV) -> float:
    """Run the commands at once, one per core; the wall time of the slowest."""
    started = time.monotonic()
    running = [
        subprocess.Popen(c, env=env, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for process in running:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{process.args[:3]} failed: {stderr[-2000:]}")
    return time.monotonic() - started


def fit_command(step: Path, batch: Path, limits: bool) -> list[str]:
    manifest = str(batch / "patched.json")
    return [
        *(str(step), "fit", "--patched", manifest),
        *("--output-dir", str(batch / "fit"), "--limits", str(limits).lower()),
    ]


def limits_setting() -> bool:
    value = os.environ.get("RECAST_BENCH_LIMITS", "1")
    if value not in ("0", "1"):
        raise SystemExit(f"RECAST_BENCH_LIMITS must be 0 or 1, not {value!r}")
    return value == "1"


def patch_and_fit(
    step: Path, signals: list[Path], work: Path, cores: int, limits: bool
) -> tuple[float, float, list[dict[str, Any]]]:
    bkgonly = str(LBB / "BkgOnly.json")
    groups = shares(signals, cores)
    patch = [
        [str(step), "patch", "--bkgonly", bkgonly, "--output-dir", str(work / f"b{i}")]
        for i in range(len(groups))
    ]
    for command, group in zip(patch, groups, strict=True):
        command += ["--signals", *map(str, group)]
    patch_seconds = in_parallel(patch)

    fit = [fit_command(step, work / f"b{i}", limits) for i in range(len(groups))]
    # As the local backend runs them: one JAX compilation cache for the steps of
    # the environment, here empty at the start (a cold platform).
    cache = {"JAX_COMPILATION_CACHE_DIR": str(work / "xla-cache")}
    fit_seconds = in_parallel(fit, {**STEP_ENV, **cache})
    fits = []
    for i in range(len(groups)):
        document = json.loads((work / f"b{i}" / "fit" / "fits.json").read_text())
        fits += document["fits"]
    return patch_seconds, fit_seconds, fits


def baseline(
    python: Path, signals: list[Path], work: Path, cores: int
) -> dict[str, Any]:
    outputs = [work / f"baseline{i}.json" for i in range(cores)]
    bkgonly = str(LBB / "BkgOnly.json")
    commands = [
        [str(python), str(BASELINE), bkgonly, str(out), *map(str, group)]
        for out, group in zip(outputs, shares(signals, cores), strict=True)
        if group
    ]
    in_parallel(commands)
    points: dict[str, Any] = {}
    for out in outputs[: len(commands)]:
        points.update(json.loads(out.read_text()))
    return points


def deviation(
    results: dict[str, dict[str, Any]], reference: dict[str, Any]
) -> tuple[float, int]:
    """The largest absolute difference of CLs observed and expected between
    the platform's stored results and the baseline, over the baseline's
    points; and how many points were compared."""
    worst, compared = 0.0, 0
    for point, plain in reference.items():
        fast = results.get(point)
        if fast is None or fast.get("cls_obs") is None:
            continue
        compared += 1
        pairs = zip(
            [fast["cls_obs"], *fast["cls_exp"]],
            [plain["cls_obs"], *plain["cls_exp"]],
            strict=True,
        )
        worst = max(worst, *(abs(a - b) for a, b in pairs))
    return worst, compared


def add_likelihood(server: Server) -> None:
    subprocess.run(
        [
            RECAST,
            "catalogue",
            "add-likelihood",
            "--slug",
            SLUG,
            "--bkgonly",
            str(LBB / "BkgOnly.json"),
            "--patchset",
            str(LBB / "patchset.json"),
            "--title",
            "ATLAS 1Lbb (SUSY-2019-08)",
            "--collaboration",
            "ATLAS",
            "--inspire",
            "1755298",
        ],
        env=server.env,
        check=True,
        capture_output=True,
    )


def until_finished(server: Server, request_id: str) -> Any:
    while True:
        page = server.get("requests/?limit=5")
        entry = next(r for r in page["results"] if r["id"] == request_id)
        if entry["status"] in FINISHED:
            return server.get(f"requests/{request_id}/")
        time.sleep(POLL_SECONDS)


def archive_problems(server: Server, run: dict[str, Any]) -> list[str]:
    """What is wrong with a run's archive: absent, another checksum than the
    API's, or a file changed or missing."""
    folder = server.var / "archive" / run["id"]
    if not (folder / MANIFEST).is_file():
        return [f"{run['point']}: no archive"]
    if sha256_file(folder / MANIFEST) != run["archive_sha256"]:
        return [f"{run['point']}: archive checksum differs from the API's"]
    return [f"{run['point']}: {p}" for p in archive_verify(folder)]


def platform_scan(names: list[str], cores: int, limits: bool) -> dict[str, Any]:
    """Submit the scan, wait for it, check every point; return the figures."""
    with serve(WORKFLOWS, workers=cores) as server:
        add_likelihood(server)
        started = time.time()
        created = server.post(
            "requests/", {"analysis": SLUG, "patches": names, "limits": limits}
        )
        accepted = time.time() - started
        detail = until_finished(server, created["id"])
        seconds = datetime.fromisoformat(detail["finished_at"]).timestamp() - started
        runs = detail["runs"]
        problems = [p for run in runs for p in archive_problems(server, run)]
        request_archive = request_archive_figures(server, detail)
    stored = [r for r in runs if r["result"] and r["result"]["cls_obs"] is not None]
    return {
        "seconds": seconds,
        "accepted_s": accepted,
        "status": detail["status"],
        "runs": len(runs),
        "succeeded": sum(1 for r in runs if r["status"] == "succeeded"),
        # Several server processes, each with runner threads: none may have
        # started a run a second time.
        "started_once": sum(1 for r in runs if r["attempts"] == 1),
        "stored": len(stored),
        "archived": len(runs) - len({p.split(":")[0] for p in problems}),
        "archive_problems": problems[:5],
        "fit_status": dict(Counter(str(r["result"]["fit_status"]) for r in stored)),
        "results": {r["point"]: r["result"] for r in stored},
        "steps": step_seconds(runs),
        **request_archive,
    }


def request_archive_figures(server: Server, detail: Any) -> dict[str, Any]:
    """The request's own archive (its points' archives linked in, the result
    table), written just after the request is marked finished: how long
    after, and whether it is intact."""
    folder = server.var / "archive" / "requests" / detail["id"]
    deadline = time.monotonic() + 120
    while not (folder / MANIFEST).is_file() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    if not (folder / MANIFEST).is_file():
        return {"request_archive": "absent"}
    finished = datetime.fromisoformat(detail["finished_at"]).timestamp()
    problems = archive_verify(folder)
    return {
        "request_archive": "verified" if not problems else problems[:3],
        "request_archive_after_finished_s": round(
            (folder / MANIFEST).stat().st_mtime - finished, 2
        ),
    }


def step_seconds(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Wall seconds of each step name, summed over the batches.

    The runs of a batch record the same step each, stamped a few milliseconds
    apart as each run's row is written: spans that start and end within
    ``BATCH_SPAN_SLACK`` of one already counted are that batch's again.
    """
    spans: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        for step in run["steps"]:
            if step["started_at"] and step["finished_at"]:
                span = (
                    datetime.fromisoformat(step["started_at"]).timestamp(),
                    datetime.fromisoformat(step["finished_at"]).timestamp(),
                )
                spans.setdefault(step["name"], []).append(span)
    return {name: round(batch_seconds(found), 1) for name, found in spans.items()}


def batch_seconds(spans: list[tuple[float, float]]) -> float:
    counted: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if not any(
            abs(start - a) < BATCH_SPAN_SLACK and abs(end - b) < BATCH_SPAN_SLACK
            for a, b in counted
        ):
            counted.append((start, end))
    return sum(end - start for start, end in counted)


def sample(signals: list[Path], size: int) -> list[Path]:
    step = max(1, len(signals) // max(size, 1))
    return signals[::step][:size]


def main() -> Report:
    report = Report("scan")
    if not (LBB / "patchset.json").exists():
        report.notes.append(f"skipped: {LBB} is absent")
        return report
    limit = (
        int(os.environ["RECAST_BENCH_POINTS"])
        if "RECAST_BENCH_POINTS" in os.environ
        else None
    )
    sample_size = int(os.environ.get("RECAST_BENCH_BASELINE_POINTS", "4"))
    with_steps = os.environ.get("RECAST_BENCH_STEPS", "0") == "1"
    limits = limits_setting()
    cores = os.cpu_count() or 1
    python = step_python()
    step = python.with_name("recast-pyhf")
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="recast-bench-scan-") as scratch:
        work = Path(scratch)
        signals = write_signals(work / "signals", limit)
        names = [path.stem for path in signals]
        scan = platform_scan(names, cores, limits)
        load_during = os.getloadavg()[0]
        reference = baseline(python, sample(signals, sample_size), work, cores)
        steps = (
            patch_and_fit(step, signals, work, cores, limits) if with_steps else None
        )

    per_point = sum(p["seconds"] for p in reference.values()) / len(reference)
    baseline_total = per_point * len(signals) / cores
    total = scan["seconds"]
    worst, compared = deviation(scan["results"], reference)
    report.figures = {
        "mode": "full (limits and plot grid)" if limits else "CLs at mu = 1 only",
        "points": len(signals),
        "cores": cores,
        "end_to_end_s": round(total, 1),
        "submit_answer_s": round(scan["accepted_s"], 2),
        "end_to_end_s_per_point_per_core": round(total * cores / len(signals), 2),
        "request_status": scan["status"],
        "runs_succeeded": f"{scan['succeeded']}/{scan['runs']}",
        "runs_started_once": f"{scan['started_once']}/{scan['runs']}",
        "results_stored": f"{scan['stored']}/{scan['runs']}",
        "archives_verified": f"{scan['archived']}/{scan['runs']}",
        "request_archive": scan["request_archive"],
        "request_archive_after_finished_s": scan.get(
            "request_archive_after_finished_s"
        ),
        "step_wall_s_summed_over_batches": scan["steps"],
        "baseline_s_per_point": round(per_point, 1),
        "baseline_points_timed": len(reference),
        "baseline_extrapolated_s": round(baseline_total, 1),
        "speedup": round(baseline_total / total, 2),
        "max_cls_deviation": worst,
        "points_compared": compared,
        "fit_status": scan["fit_status"],
        "load_average_1min_before_during": [
            round(load_before, 1),
            round(load_during, 1),
        ],
    }
    if scan["archive_problems"]:
        report.figures["archive_problems"] = scan["archive_problems"]
    if steps is not None:
        patch_seconds, fit_seconds, _ = steps
        report.figures["steps_only_patch_s"] = round(patch_seconds, 1)
        report.figures["steps_only_fit_s"] = round(fit_seconds, 1)
    complete = (
        scan["succeeded"]
        == scan["stored"]
        == scan["archived"]
        == scan["started_once"]
        == len(names)
    )
    report.targets = {
        "end_to_end_s": "under 120 s for the 125 points on 2 cores",
        "speedup": "at least 12 against the plain numpy loop",
        "max_cls_deviation": "every CLs within 1e-4 of the numpy baseline",
        "archives_verified": "every point started once, succeeded, stored and archived",
    }
    report.met = {
        "end_to_end_s": total < 120 and len(signals) >= 125,
        "speedup": baseline_total / total >= 12,
        "max_cls_deviation": compared > 0 and worst <= 1e-4,
        "archives_verified": complete,
    }
    report.notes = [
        "measured: the scan end to end: recast catalogue add-likelihood, then "
        "POST /api/v1/requests/ with every point to recast serve (gunicorn, "
        f"one process per core, {cores} in-process runner threads, the scan "
        "cut into batches), from just before the POST to the request's "
        "finished_at; every run then checked (status, stored CLs, archive "
        "checksum and files).",
        (
            "mode full (RECAST_BENCH_LIMITS=1): the fit step computes CLs at "
            "mu = 1, the observed and five expected limits (to relative 1e-4) and "
            "a 12-point plot grid per point; the ratio is conservative"
            if limits
            else "mode CLs only (RECAST_BENCH_LIMITS=0, a request's limits: false): "
            "the fit step computes CLs at mu = 1 and its expected band, exactly "
            "the baseline's quantities; the like-for-like ratio"
        ),
        f"baseline: plain pyhf numpy loop (CLs at mu = 1 only) timed on "
        f"{len(reference)} points spread over the grid, {cores} processes, "
        f"extrapolated to {len(signals)} points on {cores} cores",
        "max_cls_deviation: largest absolute difference of CLs obs and exp at "
        "mu = 1 between the stored results and the baseline's points",
    ]
    return report


if __name__ == "__main__":
    from benchmarks.report import show

    show(main())
