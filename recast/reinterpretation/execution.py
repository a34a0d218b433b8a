"""Execute one run: lay out its inputs, drive the engine, record every step,
read and check the result, and write the archive."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

import recast
from recast.archive.builder import archive_write
from recast.archive.crate import describe
from recast.catalogue.loader import recipe_sha256
from recast.catalogue.models import Analysis, WorkflowVersion
from recast.core import jsonschema as schemas
from recast.core.errors import InvalidInput
from recast.core.results import point_result
from recast.engine import graph, runner
from recast.engine.environments import EnvironmentBuildFailed, image_folder
from recast.engine.events import StepEvent
from recast.engine.local import LocalExecutor
from recast.reinterpretation import services
from recast.reinterpretation.models import Run, Status
from recast.storage.services import blob_path

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0
GRAPH_FILE = "graph.svg"


def executor_for(version: WorkflowVersion) -> LocalExecutor:
    return LocalExecutor(Path(settings.RECAST_ENVS_DIR), version.image_by_name())


def materialise(run: Run, analysis: Analysis, inputs_dir: Path) -> dict[str, Any]:
    """Copy the run's files into ``inputs_dir``; return the init parameters."""
    inputs_dir.mkdir(parents=True)
    if analysis.kind == Analysis.Kind.PUBLIC_LIKELIHOOD:
        bkgonly = inputs_dir / "BkgOnly.json"
        shutil.copyfile(blob_path(analysis.bkgonly_sha256), bkgonly)
        signal = inputs_dir / f"{run.point}.json"
        shutil.copyfile(blob_path(run.inputs["signal"].removeprefix("sha256:")), signal)
        return {"bkgonly": str(bkgonly), "signals": [str(signal)]}

    init: dict[str, Any] = dict(run.inputs)
    for name, value in run.inputs.items():
        if isinstance(value, str) and value.startswith("sha256:"):
            target = inputs_dir / name
            shutil.copyfile(blob_path(value.removeprefix("sha256:")), target)
            init[name] = str(target)
    return init


def read_result(outcome: runner.Outcome, point: str) -> dict[str, Any]:
    """The point's result document from the summarise step, checked by its schema."""
    result = point_result(outcome.outputs("summarise"), point)
    if result is None:
        raise InvalidInput(
            f"the summarise step published no result for point '{point}'"
        )
    schemas.validate(result, schemas.spec("result/v1"), "results.json")
    return result


def provenance(
    run: Run, attempt: int, outcome: runner.Outcome, seconds: float
) -> dict[str, Any]:
    version = run.request.workflow_version
    return {
        "run": str(run.id),
        "request": str(run.request_id),
        "attempt": attempt,
        "point": run.point,
        "model_parameters": run.model_parameters,
        "inputs": run.inputs,
        "analysis": run.request.analysis.slug,
        "workflow": {"version": version.number, "digest": version.digest},
        "images": [
            {k: i[k] for k in ("name", "tag", "recipe_sha256")} for i in version.images
        ],
        "backend": settings.RECAST_BACKEND,
        "platform": {"recast": recast.__version__},
        "status": outcome.status,
        "reason": outcome.reason,
        "seconds": round(seconds, 3),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": timezone.now().isoformat(),
        "steps": [
            event.as_dict() for event in outcome.steps if event.kind != "started"
        ],
    }


def image_recipes(version: WorkflowVersion) -> dict[str, Path]:
    """Each image's recipe, so that the archive alone can rebuild the step
    environments; skipped (and so not claimed) if it changed since loading."""
    recipes = {}
    for image in version.images:
        recipe = Path(image["recipe"])
        if recipe.is_dir() and recipe_sha256(recipe) == image["recipe_sha256"]:
            recipes[f"images/{image_folder(image['name'])}"] = recipe
        else:
            logger.warning(
                "recipe of %s changed since it was loaded; not archived", image["name"]
            )
    return recipes


def write_archive(run: Run, rundir: Path, documents: dict[str, Any]) -> tuple[str, str]:
    target = Path(settings.RECAST_ARCHIVE_DIR) / str(run.id)
    if target.exists():
        # An earlier attempt archived, then died before recording it.
        target = target.with_name(f"{run.id}.attempt-{run.attempts}")
    target.parent.mkdir(parents=True, exist_ok=True)
    workflow = rundir / "workflow"
    files = {"inputs": rundir / "inputs", "logs": workflow / "_recast" / "logs"}
    for stage in sorted(
        p for p in workflow.iterdir() if p.is_dir() and not p.name.startswith("_")
    ):
        files[f"outputs/{stage.name}"] = stage
    snapshot = workflow / "_yadage" / "yadage_snapshot_workflow.json"
    if snapshot.exists():
        files["yadage/yadage_snapshot_workflow.json"] = snapshot
    files.update(image_recipes(run.request.workflow_version))
    spec = run.request.workflow_version.spec
    files[GRAPH_FILE] = write_graph(rundir / GRAPH_FILE, spec, snapshot)
    digest = archive_write(
        target,
        files,
        documents,
        lambda folder: describe(folder, documents["run.json"], spec),
    )
    return str(target), digest


def write_graph(target: Path, spec: dict[str, Any], snapshot: Path) -> Path:
    """The graph of steps with each step's final state, from yadage's snapshot."""
    states = json.loads(snapshot.read_text()) if snapshot.exists() else None
    target.write_text(graph.render(spec, snapshot=states, title="Steps of this run"))
    return target


class Heartbeat:
    """Renews the run's lease while the engine polls it, and tells the engine
    to stop when the run was cancelled or another worker took it over."""

    def __init__(self, run_id: str, attempt: int) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.last = time.monotonic()
        self.lost = False

    def stopped(self) -> bool:
        if self.lost or time.monotonic() - self.last < HEARTBEAT_SECONDS:
            return self.lost
        self.last = time.monotonic()
        self.lost = not services.run_heartbeat(self.run_id, self.attempt)
        return self.lost


def run_execute(run_id: str) -> str:
    """Run ``run_id`` if it is queued; safe to call twice. Returns its final status."""
    attempt = services.run_start(run_id, settings.RECAST_BACKEND)
    if attempt is None:
        status = Run.objects.filter(id=run_id).values_list("status", flat=True).first()
        if status is None:
            logger.warning("run %s does not exist; its task is dropped", run_id)
            return "missing"
        return str(status)
    run = Run.objects.select_related(
        "request__analysis", "request__workflow_version"
    ).get(id=run_id)
    rundir = Path(settings.RECAST_WORK_DIR) / f"{run.id}-{attempt}"
    shutil.rmtree(rundir, ignore_errors=True)
    started = time.monotonic()
    logger.info(
        "run %s (%s, point %s) attempt %d started",
        run.id,
        run.request.analysis.slug,
        run.point,
        attempt,
    )

    def observe(event: StepEvent) -> None:
        services.step_record(run_id, attempt, event)

    beat = Heartbeat(run_id, attempt)

    try:
        init = materialise(run, run.request.analysis, rundir / "inputs")
        outcome = runner.execute(
            run.request.workflow_version.spec,
            init,
            rundir / "workflow",
            executor_for(run.request.workflow_version),
            observe,
            beat.stopped,
            timeout=settings.RECAST_STEP_TIMEOUT,
        )
    except EnvironmentBuildFailed as exc:
        services.run_fail(
            run_id, attempt, f"the step environment could not be built: {exc}"
        )
        return Status.FAILED
    except Exception:
        # The requester gets a plain message; the operator gets the traceback.
        logger.exception("run %s attempt %d: internal error", run_id, attempt)
        services.run_fail(
            run_id,
            attempt,
            "internal error in the platform; the operators have the details",
        )
        return Status.FAILED
    status = conclude(run, attempt, rundir, outcome, time.monotonic() - started)
    if status == Status.SUCCEEDED:
        # Everything worth keeping is in the archive now.
        shutil.rmtree(rundir, ignore_errors=True)
    return status


def relative_init(init: dict[str, Any], rundir: Path) -> dict[str, Any]:
    """Init parameters with the run folder's paths made relative, so a re-run
    from the archive can point them at its own copy of the inputs."""
    prefix = f"{rundir}/"

    def relative(value: Any) -> Any:
        if isinstance(value, list):
            return [relative(v) for v in value]
        return value.removeprefix(prefix) if isinstance(value, str) else value

    return {name: relative(value) for name, value in init.items()}


def conclude(
    run: Run, attempt: int, rundir: Path, outcome: runner.Outcome, seconds: float
) -> str:
    if outcome.status == "cancelled":
        return Status.CANCELLED
    result: dict[str, Any] | None = None
    if outcome.status == "succeeded":
        try:
            result = read_result(outcome, run.point)
        except InvalidInput as exc:
            outcome.status, outcome.reason = "failed", exc.message

    documents = {"run.json": provenance(run, attempt, outcome, seconds)}
    documents["run.json"]["init"] = relative_init(outcome.init, rundir)
    if result is not None:
        documents["result.json"] = result
    path, digest = write_archive(run, rundir, documents)
    if result is None:
        services.run_fail(
            str(run.id), attempt, outcome.reason, outcome.failed_step, path
        )
        logger.info(
            "run %s failed after %.1f s: %s",
            run.id,
            seconds,
            outcome.reason.splitlines()[0],
        )
        return Status.FAILED
    services.run_succeed(str(run.id), attempt, result, path, digest)
    logger.info("run %s succeeded in %.1f s", run.id, seconds)
    return Status.SUCCEEDED
