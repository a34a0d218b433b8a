"""4b. Platform overhead per step: a workflow of three trivial steps submitted
through the API, run by the server's worker threads through the engine and
archived, against ``yadage-run`` on the same spec.

yadage-run cannot run a docker-encapsulated step without a Docker engine, so
the baseline runs the same spec with the steps' environment set to
``localproc-env`` (the same commands in a shell, no image): yadage's own cost,
a lower bound for any backend. It is measured twice: the yadage-run command
(what a user types; it pays the interpreter start and imports) and yadage's
steering API called in a warm process (what yadage itself costs per run).
The overhead per step is the platform's submit-to-finished time minus the
warm yadage time, over three steps. The platform runs every step
(``"cache": false``) and also validates the result and writes the archive,
which counts as overhead here.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests
import yaml
from yadage.steering_api import run_workflow
from yadage.utils import setupbackend_fromstring

from benchmarks.report import Report
from benchmarks.server import Server, platform_env, serve, until_finished
from recast.catalogue import loader
from recast.engine import runner
from recast.engine.local import LocalExecutor

WORKFLOWS = Path(__file__).with_name("workflows")
SLUG = "three-steps"
FOLDER = WORKFLOWS / SLUG
RESULT = FOLDER / "example" / "result.json"
STEPS = 3
REPEATS = 5
TARGET_MS = 100.0


def localproc_spec(target: Path) -> None:
    """The benchmark's spec with every step in localproc-env."""
    target.mkdir(parents=True)
    shutil.copy(FOLDER / "workflow.yml", target / "workflow.yml")
    steps = yaml.safe_load((FOLDER / "steps.yml").read_text())
    for step in steps.values():
        step["environment"] = {"environment_type": "localproc-env"}
    (target / "steps.yml").write_text(yaml.safe_dump(steps))


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def yadage_cli(folder: Path, index: int) -> None:
    command = Path(sys.executable).with_name("yadage-run")
    subprocess.run(
        [
            str(command),
            str(folder / f"cli-{index}"),
            "workflow.yml",
            "-t",
            str(folder / "spec"),
            "-p",
            f"message=m{index}",
            "-p",
            f"result={RESULT}",
            "-u",
            "0.01",
            "--no-visualize",
        ],
        check=True,
        capture_output=True,
    )


def yadage_warm(folder: Path, index: int) -> None:
    workdir = folder / f"warm-{index}"
    run_workflow(
        str(workdir),
        workflow="workflow.yml",
        toplevel=str(folder / "spec"),
        initdata={"message": f"m{index}", "result": str(RESULT)},
        backend=setupbackend_fromstring("foregroundasync"),
        updateinterval=0.01,
        loginterval=3600,
        visualize=False,
    )
    assert (workdir / "summarise" / "results.json").exists()


def engine_warm(entry: loader.Entry, folder: Path, index: int) -> None:
    images = {image["name"]: image for image in entry.images}
    envs = Path(platform_env(folder, WORKFLOWS)["RECAST_ENVS_DIR"])
    done = runner.execute(
        entry.spec,
        {"message": f"m{index}", "result": str(RESULT)},
        folder / f"engine-{index}",
        LocalExecutor(envs, images),
        lambda event: None,
        lambda: False,
    )
    assert done.status == "succeeded", done.reason


def upload(server: Server, path: Path) -> str:
    with path.open("rb") as handle:
        answer = requests.post(
            f"{server.url}/api/v1/uploads/",
            files={"file": (path.name, handle)},
            headers=server.headers,
            timeout=60,
        )
    answer.raise_for_status()
    return f"sha256:{answer.json()['sha256']}"


def platform_run(server: Server, result: str, message: str) -> tuple[float, Any]:
    """Seconds from just before the POST to the end the server recorded."""
    started = time.time()
    created = server.post(
        "requests/",
        {
            "analysis": SLUG,
            "inputs": {"message": message, "result": result},
            "cache": False,
        },
    )
    seconds, detail = until_finished(server, created["id"], started)
    return seconds, detail


def ran_every_step(detail: Any) -> bool:
    steps = [s for run in detail["runs"] for s in run["steps"]]
    return len(steps) == STEPS and not any(s["reused"] for s in steps)


def main() -> Report:
    """Interleaved, one of each per round, so that the shared machine's load
    weighs on the platform and its baselines alike."""
    os.environ.setdefault("PACKTIVITY_LOGGING_DISABLE", "true")
    scratch = Path(tempfile.mkdtemp(prefix="recast-bench-overhead-"))
    localproc_spec(scratch / "spec")
    cli, warm, engine, runs = [], [], [], []
    with serve(WORKFLOWS, workers=1) as server:
        reference = upload(server, RESULT)
        platform_run(server, reference, "warmup")  # builds the step environment
        yadage_warm(scratch, -1)
        entry = loader.read_entry(FOLDER, WORKFLOWS)
        engine_warm(entry, scratch, -1)
        for index in range(REPEATS):
            cli.append(timed(partial(yadage_cli, scratch, index)))
            warm.append(timed(partial(yadage_warm, scratch, index)))
            engine.append(timed(partial(engine_warm, entry, scratch, index)))
            runs.append(platform_run(server, reference, f"m{index}"))
    shutil.rmtree(scratch, ignore_errors=True)

    seconds = [s for s, _ in runs]
    succeeded = sum(1 for _, d in runs if d["status"] == "succeeded")
    platform = statistics.median(seconds)
    per_step_ms = (platform - statistics.median(warm)) / STEPS * 1000
    report = Report("overhead")
    report.figures = {
        "platform_run_s_median": platform,
        "platform_run_s_min": min(seconds),
        "yadage_run_cli_s_median": statistics.median(cli),
        "yadage_warm_s_median": statistics.median(warm),
        "engine_warm_s_median": statistics.median(engine),
        "overhead_per_step_ms": per_step_ms,
        "ratio_platform_to_yadage_warm": platform / statistics.median(warm),
        "ratio_platform_to_yadage_cli": platform / statistics.median(cli),
        "runs_succeeded": f"{succeeded}/{REPEATS}",
        "runs_that_ran_every_step": sum(1 for _, d in runs if ran_every_step(d)),
        "load_average_1min": os.getloadavg()[0],
    }
    report.targets = {"overhead_per_step_ms": f"under {TARGET_MS:.0f} ms per step"}
    report.met = {"overhead_per_step_ms": per_step_ms < TARGET_MS}
    report.notes = [
        f"{REPEATS} runs each, medians; a three-step workflow of shell one-liners "
        "(benchmarks/workflows/three-steps).",
        "platform: from just before POST /api/v1/requests/ (cache false) to the "
        "request's finished_at as the server recorded it (when its status turns "
        "succeeded); gunicorn (recast serve), one in-process worker thread, "
        "local backend, SQLite; includes result validation and the run's "
        "archive.",
        "baseline: the same spec with localproc-env steps, by the yadage-run "
        "command and by yadage's steering API in a warm process; engine: "
        "recast's engine alone (local backend, docker-encapsulated steps) in a "
        "warm process.",
        "The machine is shared: see load_average_1min; compare ratios, not seconds.",
    ]
    return report


if __name__ == "__main__":
    from benchmarks.report import show

    show(main())
