"""Benchmark 4a: the 125-point ATLAS 1Lbb scan against a plain pyhf numpy loop.

What it measures today: the public-likelihood workflow's own steps (``recast-pyhf
patch`` and ``recast-pyhf fit``) over every point, as one batch per core (two
step processes on two cores, each with its share of the points), which is how
a batched scan runs them. It does not yet go through the API, the worker and the
archive: submitting a scan as batches is another change, and until it is on
main this benchmark says so in its notes.

The baseline is the loop a physicist would write (pyhf numpy backend, CLs at
mu = 1 with the expected band, one model per point), timed on a sample of
points spread over the grid on the same cores and extrapolated to all points.
With RECAST_BENCH_LIMITS=1 (the default) the fit step computes more per point
(the six upper limits and the plot grid as well), so the ratio is conservative;
with RECAST_BENCH_LIMITS=0 it runs as a request with ``limits: false`` does,
computing exactly the baseline's quantities: the like-for-like ratio.

Environment: RECAST_BENCH_POINTS (default all), RECAST_BENCH_BASELINE_POINTS
(default 4), RECAST_BENCH_LIMITS (1 or 0, default 1), RECAST_ENVS_DIR (the step
environments).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.report import Report

REPO = Path(__file__).resolve().parent.parent
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


def deviation(fits: list[dict[str, Any]], reference: dict[str, Any]) -> float:
    worst = 0.0
    for fit in fits:
        plain = reference.get(fit["point"])
        if plain is None or fit["cls_obs"] is None:
            continue
        fast = [fit["cls_obs"], *fit["cls_exp"]]
        pairs = zip(fast, [plain["cls_obs"], *plain["cls_exp"]], strict=True)
        worst = max(worst, *(abs(a - b) for a, b in pairs))
    return worst


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
    limits = limits_setting()
    cores = os.cpu_count() or 1
    python = step_python()
    step = python.with_name("recast-pyhf")

    with tempfile.TemporaryDirectory(prefix="recast-bench-scan-") as scratch:
        work = Path(scratch)
        signals = write_signals(work / "signals", limit)
        patch_seconds, fit_seconds, fits = patch_and_fit(
            step, signals, work, cores, limits
        )
        reference = baseline(python, sample(signals, sample_size), work, cores)

    per_point = sum(p["seconds"] for p in reference.values()) / len(reference)
    baseline_total = per_point * len(signals) / cores
    total = patch_seconds + fit_seconds
    statuses = Counter(f["fit_status"] for f in fits)
    paths = Counter(str(f["fit_path"]) for f in fits)
    report.figures = {
        "mode": "full (limits and plot grid)" if limits else "CLs at mu = 1 only",
        "points": len(signals),
        "cores": cores,
        "patch_step_s": round(patch_seconds, 1),
        "fit_step_s": round(fit_seconds, 1),
        "patch_and_fit_s": round(total, 1),
        "fit_s_per_point_per_core": round(fit_seconds * cores / len(signals), 2),
        "fits_per_point": round(sum(f["n_fits"] for f in fits) / len(fits), 1),
        "baseline_s_per_point": round(per_point, 1),
        "baseline_extrapolated_s": round(baseline_total, 1),
        "speedup": round(baseline_total / total, 2),
        "max_cls_deviation": deviation(fits, reference),
        "fit_status": dict(statuses),
        "fit_path": dict(paths),
    }
    report.targets = {
        "patch_and_fit_s": "under 120 s for the 125 points on 2 cores",
        "speedup": "at least 12 against the plain numpy loop",
        "max_cls_deviation": "every CLs within 1e-4 of the numpy baseline",
    }
    report.met = {
        "patch_and_fit_s": total < 120 and len(signals) >= 125,
        "speedup": baseline_total / total >= 12,
        "max_cls_deviation": report.figures["max_cls_deviation"] <= 1e-4,
    }
    report.notes = [
        "measured: the patch and fit steps over all points, one batch per core "
        "(not yet through the API, worker and archive: that needs batched scans)",
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
        "mu = 1 over the baseline's points",
    ]
    return report


if __name__ == "__main__":
    from benchmarks.report import show

    show(main())
