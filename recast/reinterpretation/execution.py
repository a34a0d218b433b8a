"""Execute runs: claim them, lay out their inputs, drive the engine, record
every step, read and check each point's result, and write each point's archive.

Runs are executed in batches: one workflow execution whose init parameters
carry several points, when the workflow version declares that it accepts
them (``batch`` in its catalogue entry); each step then runs once for the
whole batch, in one warm process. A batch of one is a plain run. Every point
is still recorded as if it ran alone: its own Step rows, result, and archive
(its own inputs, its own outputs or its slice of the batch's documents, the
batch's logs), with the batch and its other points named in the provenance.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

import recast
from recast.archive.builder import DiskFull, archive_write, point_outputs
from recast.archive.crate import describe
from recast.catalogue.loader import recipe_sha256
from recast.catalogue.models import Analysis, WorkflowVersion
from recast.core import jsonschema as schemas
from recast.core.errors import Conflict, InvalidInput
from recast.core.results import point_result
from recast.credentials.selectors import CredentialUnavailable, request_credentials
from recast.engine import graph, runner
from recast.engine.backend import Executor
from recast.engine.cache import StepCache
from recast.engine.environments import EnvironmentBuildFailed, image_folder
from recast.engine.events import StepEvent
from recast.engine.local import LocalExecutor
from recast.reinterpretation import fairshare, services
from recast.reinterpretation.models import Run, Status
from recast.storage.services import blob_path

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5.0
# The init parameter that lists a public-likelihood execution's signals, for
# workflow versions loaded before batch declarations existed.
SIGNALS = "signals"
GRAPH_FILE = "graph.svg"


def executor_for(batch: Batch, rundir: Path) -> Executor:
    """The executor of RECAST_BACKEND; container backends see ``rundir``
    (the batch's inputs and work folders) read-only, and label what they start
    with the request's id and the run's (a batch of several points: the
    batch's id)."""
    images = batch.version.image_by_name()
    first = batch.claims[0].run
    labels = {
        "recast.io/request": str(first.request_id),
        "recast.io/run": first_or_batch(batch),
    }
    memory_mb, cpus = settings.RECAST_STEP_MEMORY_MB, settings.RECAST_STEP_CPUS
    # The container clients load on demand: the kubernetes client alone takes
    # about half a second to import, which the web server need not pay.
    if settings.RECAST_BACKEND == "docker":
        from recast.engine.docker import DockerExecutor

        secrets = settings.RECAST_STEP_SECRETS_DIR
        return DockerExecutor(
            images, rundir, memory_mb, cpus, labels, secrets_dir=secrets
        )
    if settings.RECAST_BACKEND == "kubernetes":
        from recast.engine.kubernetes import KubernetesConfig, KubernetesExecutor

        return KubernetesExecutor(
            images,
            rundir,
            KubernetesConfig(
                namespace=settings.RECAST_K8S_NAMESPACE,
                workspace_claim=settings.RECAST_K8S_WORKSPACE_CLAIM,
                workspace_root=settings.RECAST_K8S_WORKSPACE_ROOT,
                registry=settings.RECAST_K8S_REGISTRY,
                ttl_seconds=settings.RECAST_K8S_JOB_TTL,
                labels=labels,
            ),
            memory_mb,
            cpus,
        )
    return LocalExecutor(
        Path(settings.RECAST_ENVS_DIR), images, rundir, settings.RECAST_LOCAL_ISOLATION
    )


def first_or_batch(batch: Batch) -> str:
    return batch.claims[0].run_id if len(batch.claims) == 1 else f"batch-{batch.id}"


@dataclass
class Claim:
    """A run this worker holds, as ``attempt``, and the point's own init."""

    run: Run
    attempt: int
    init: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run.id)


@dataclass
class Batch:
    """Points executed together: one workflow execution, one work folder."""

    claims: list[Claim]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    init: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> WorkflowVersion:
        return self.claims[0].run.request.workflow_version

    @property
    def analysis(self) -> Analysis:
        return self.claims[0].run.request.analysis

    def folder(self) -> Path:
        if len(self.claims) == 1:
            claim = self.claims[0]
            return Path(settings.RECAST_WORK_DIR) / f"{claim.run_id}-{claim.attempt}"
        return Path(settings.RECAST_WORK_DIR) / f"batch-{self.id}"

    def record(self) -> dict[str, Any] | None:
        """What a point's provenance says about the batch; None for a batch of one."""
        if len(self.claims) == 1:
            return None
        return {
            "id": self.id,
            "size": len(self.claims),
            "points": [c.run.point for c in self.claims],
            "runs": [c.run_id for c in self.claims],
        }


def step_cache_for(batch: Batch, rundir: Path) -> StepCache | None:
    """The shared step cache as this batch uses it: new entries name the run
    (or the batch) that made them, and the batch's own folder is left out of
    the keys (every attempt has its own). A batch's points share a request."""
    if not batch.claims[0].run.request.use_cache:
        return None
    return StepCache(
        Path(settings.RECAST_STEP_CACHE_DIR),
        settings.RECAST_CACHE_MAX_BYTES,
        producer=first_or_batch(batch),
        roots=(str(rundir),),
    )


def materialise_point(
    claim: Claim, analysis: Analysis, parameter: str, inputs_dir: Path
) -> dict[str, Any]:
    """Copy the point's files into ``inputs_dir``; return its init parameters."""
    inputs_dir.mkdir(parents=True, exist_ok=True)
    run = claim.run
    if analysis.kind == Analysis.Kind.PUBLIC_LIKELIHOOD:
        bkgonly = inputs_dir / "BkgOnly.json"
        if not bkgonly.exists():
            shutil.copyfile(blob_path(analysis.bkgonly_sha256), bkgonly)
        signal = inputs_dir / f"{run.point}.json"
        shutil.copyfile(blob_path(run.inputs["signal"].removeprefix("sha256:")), signal)
        # A request's points all ask the same ``limits`` (see submission), so
        # the batch may take its first point's.
        limits = bool(run.inputs.get("limits", True))
        return {"bkgonly": str(bkgonly), parameter: [str(signal)], "limits": limits}

    init = {
        name: init_value(inputs_dir / name, value) for name, value in run.inputs.items()
    }
    for name, sha256 in run.request.workflow_version.preserved.items():
        init[name] = init_value(inputs_dir / name, f"sha256:{sha256}")
    init["point"] = run.point
    init["model_parameters"] = init_value(
        inputs_dir / "model_parameters", run.model_parameters
    )
    return init


def materialise(batch: Batch, inputs_dir: Path) -> dict[str, Any]:
    """Lay out every point's inputs; return the batch's init parameters (the
    points' own, with the batch parameter's lists joined)."""
    parameter = str(batch.version.batch.get("parameter", SIGNALS))
    for claim in batch.claims:
        claim.init = materialise_point(claim, batch.analysis, parameter, inputs_dir)
    init = dict(batch.claims[0].init)
    if len(batch.claims) > 1:
        init[parameter] = [c.init[parameter][0] for c in batch.claims]
    return init


def init_value(target: Path, value: Any) -> Any:
    """An input as the workflow reads it: a stored file (or a list of them) as
    the path of its copy under ``target``, an object as a JSON file (a step's
    command line cannot carry one), anything else as it is."""
    if isinstance(value, str) and value.startswith("sha256:"):
        shutil.copyfile(blob_path(value.removeprefix("sha256:")), target)
        return str(target)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and v.startswith("sha256:") for v in value)
    ):
        target.mkdir()
        return [init_value(target / str(i), v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        target = target.with_suffix(".json")
        target.write_text(json.dumps(value, indent=1, sort_keys=True))
        return str(target)
    return value


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
    claim: Claim, batch: Batch, outcome: runner.Outcome, seconds: float
) -> dict[str, Any]:
    run, version = claim.run, batch.version
    record = {
        "run": claim.run_id,
        "request": str(run.request_id),
        "attempt": claim.attempt,
        "point": run.point,
        "model_parameters": run.model_parameters,
        "inputs": run.inputs,
        "analysis": batch.analysis.slug,
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
    shared = batch.record()
    if shared is not None:
        shared["init"] = relative_init(batch.init, batch.folder())
        record["batch"] = shared
    return record


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


def archive_contents(
    claim: Claim, batch: Batch, rundir: Path
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The files (and cut-down documents) of one point's archive. A batch of
    one keeps everything; in a batch a point keeps its own inputs and outputs,
    its slice of the combined documents, and the batch's logs."""
    workflow = rundir / "workflow"
    files: dict[str, Path] = {"logs": workflow / "_recast" / "logs"}
    documents: dict[str, Any] = {}
    stages = sorted(
        p for p in workflow.iterdir() if p.is_dir() and not p.name.startswith("_")
    )
    if len(batch.claims) == 1:
        files["inputs"] = rundir / "inputs"
        files.update({f"outputs/{stage.name}": stage for stage in stages})
    else:
        for value in claim.init.values():
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, str) and Path(path).is_file():
                    files[Path(path).relative_to(rundir).as_posix()] = Path(path)
        points = {c.run.point for c in batch.claims}
        for stage in stages:
            own, sliced = point_outputs(
                stage, f"outputs/{stage.name}", claim.run.point, points
            )
            files.update(own)
            documents.update(sliced)
    snapshot = workflow / "_yadage" / "yadage_snapshot_workflow.json"
    if snapshot.exists():
        files["yadage/yadage_snapshot_workflow.json"] = snapshot
    files.update(image_recipes(batch.version))
    files[GRAPH_FILE] = write_graph(rundir / GRAPH_FILE, batch.version.spec, snapshot)
    return files, documents


def write_archive(
    claim: Claim, batch: Batch, rundir: Path, documents: dict[str, Any]
) -> tuple[str, str]:
    run = claim.run
    target = Path(settings.RECAST_ARCHIVE_DIR) / str(run.id)
    if target.exists():
        # An earlier attempt archived, then died before recording it.
        target = target.with_name(f"{run.id}.attempt-{claim.attempt}")
    target.parent.mkdir(parents=True, exist_ok=True)
    files, sliced = archive_contents(claim, batch, rundir)
    if sliced:
        documents["run.json"]["batch"]["sliced"] = sorted(sliced)
    spec = batch.version.spec
    digest = archive_write(
        target,
        files,
        {**sliced, **documents},
        lambda folder: describe(folder, documents["run.json"], spec),
    )
    return str(target), digest


def write_graph(target: Path, spec: dict[str, Any], snapshot: Path) -> Path:
    """The graph of steps with each step's final state, from yadage's snapshot.

    Drawn once per execution: the points of a batch share it, and an archive
    made earlier may hold a link to the file already."""
    if not target.exists():
        states = json.loads(snapshot.read_text()) if snapshot.exists() else None
        title = "Steps of this run"
        target.write_text(graph.render(spec, snapshot=states, title=title))
    return target


class Heartbeat:
    """Renews the leases of a batch's runs while the engine polls it, and
    tells the engine to stop once none is held any more (each was cancelled
    or taken over by another worker); the others go on meanwhile."""

    def __init__(self, claims: list[Claim]) -> None:
        self.held = {c.run_id: c.attempt for c in claims}
        self.last = time.monotonic()

    def stopped(self) -> bool:
        if not self.held or time.monotonic() - self.last < HEARTBEAT_SECONDS:
            return not self.held
        self.last = time.monotonic()
        kept = services.runs_heartbeat(self.held)
        self.held = {r: a for r, a in self.held.items() if r in kept}
        return not self.held

    def holds(self, claim: Claim) -> bool:
        return claim.run_id in self.held


def claim_runs(run_ids: list[str]) -> tuple[list[Claim], dict[str, str]]:
    """Start each run that is queued (or silent); the others keep their status."""
    claims, statuses = [], {}
    for run_id in run_ids:
        attempt = services.run_start(run_id, settings.RECAST_BACKEND)
        if attempt is None:
            status = (
                Run.objects.filter(id=run_id).values_list("status", flat=True).first()
            )
            if status is None:
                logger.warning("run %s does not exist; its task is dropped", run_id)
            statuses[run_id] = str(status or "missing")
            continue
        run = Run.objects.select_related(
            "request__analysis", "request__workflow_version"
        ).get(id=run_id)
        claims.append(Claim(run, attempt))
    return claims, statuses


def batches_of(claims: list[Claim]) -> list[Batch]:
    """Claims that may share an execution: one request (so one workflow version
    and one likelihood) whose workflow accepts several points."""
    groups: dict[Any, list[Claim]] = {}
    for claim in claims:
        groups.setdefault(claim.run.request_id, []).append(claim)
    batches = []
    for group in groups.values():
        version = group[0].run.request.workflow_version
        size = int(version.batch.get("max_points", 1)) if version.batch else 1
        batches += [Batch(group[i : i + size]) for i in range(0, len(group), size)]
    return batches


def runs_execute(run_ids: list[str]) -> dict[str, str]:
    """Execute those of ``run_ids`` that are queued, or running but silent past
    their lease (their worker died): safe to call twice, and by several
    workers at once. Returns each run's final status (or its status as found)."""
    claims, statuses = claim_runs(run_ids)
    for batch in batches_of(claims):
        statuses.update(batch_execute(batch))
    return statuses


def runs_next(among: list[str] | None = None) -> dict[str, str]:
    """Claim the next fair batch (of ``among`` when given; see fairshare) and
    execute it. Returns each of its points' final status; {} when nothing
    waits that may start now. Safe to call any number of times, by any number
    of workers at once."""
    run_ids = fairshare.batch_claim(settings.RECAST_BACKEND, among)
    runs = Run.objects.select_related(
        "request__analysis", "request__workflow_version"
    ).filter(id__in=run_ids)
    claims = sorted((Claim(run, run.attempts) for run in runs), key=point_of)
    statuses = {}
    for batch in batches_of(claims):
        statuses.update(batch_execute(batch))
    return statuses


def point_of(claim: Claim) -> str:
    return claim.run.point


def run_execute(run_id: str) -> str:
    """Run ``run_id`` alone if it is queued; safe to call twice. Returns its status."""
    return runs_execute([run_id])[run_id]


def batch_execute(batch: Batch) -> dict[str, str]:
    rundir = batch.folder()
    shutil.rmtree(rundir, ignore_errors=True)
    started = time.monotonic()
    logger.info(
        "batch %s (%s, %d point(s): %s) started",
        batch.id,
        batch.analysis.slug,
        len(batch.claims),
        ", ".join(f"{c.run.point} attempt {c.attempt}" for c in batch.claims),
    )
    beat = Heartbeat(batch.claims)

    def observe(event: StepEvent) -> None:
        for claim in batch.claims:
            if beat.holds(claim):
                services.step_record(claim.run_id, claim.attempt, event)

    try:
        batch.init = materialise(batch, rundir / "inputs")
        outcome = runner.execute(
            batch.version.spec,
            batch.init,
            rundir / "workflow",
            executor_for(batch, rundir),
            observe,
            beat.stopped,
            timeout=settings.RECAST_STEP_TIMEOUT,
            cache=step_cache_for(batch, rundir),
            credentials=request_credentials(batch.claims[0].run.request_id),
        )
    except EnvironmentBuildFailed as exc:
        return fail_all(batch, f"the step environment could not be built: {exc}")
    except CredentialUnavailable as exc:
        return fail_all(batch, str(exc))
    except (OperationalError, InterfaceError):
        # The database went away (a restart, a failover): not the points'
        # fault. They stay running until their leases lapse; the sweeper then
        # hands them to the workers again.
        logger.exception("batch %s: lost the database; left to the sweeper", batch.id)
        connection.close_if_unusable_or_obsolete()
        return {c.run_id: Status.RUNNING for c in batch.claims}
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = settings.RECAST_WORK_DIR
            return fail_all(batch, f"no space left on the device holding {where}")
        # The requester gets a plain message; the operator gets the traceback.
        logger.exception("batch %s: internal error", batch.id)
        return fail_all(
            batch, "internal error in the platform; the operators have the details"
        )
    if splittable(batch, outcome, beat):
        return split(batch, rundir, outcome)

    seconds = time.monotonic() - started
    statuses = {}
    for claim in batch.claims:
        statuses[claim.run_id] = conclude(claim, batch, beat, rundir, outcome, seconds)
    if all(s == Status.SUCCEEDED for s in statuses.values()):
        # Everything worth keeping is in the archives now.
        shutil.rmtree(rundir, ignore_errors=True)
    return statuses


def fail_all(batch: Batch, reason: str) -> dict[str, str]:
    for claim in batch.claims:
        services.run_fail(claim.run_id, claim.attempt, reason)
    return {c.run_id: Status.FAILED for c in batch.claims}


def splittable(batch: Batch, outcome: runner.Outcome, beat: Heartbeat) -> bool:
    """A step that failed for a batch may have failed for one bad point: the
    batch is then run again in halves, until the bad points fail alone. Not
    for a step stopped by its time limit (the halves would time out too)."""
    failed = [e for e in outcome.steps if e.kind == "failed"]
    return (
        outcome.status == "failed"
        and len(batch.claims) > 1
        and bool(failed)
        and "timed out" not in failed[0].reason
        and len(beat.held) > 0
    )


def split(batch: Batch, rundir: Path, outcome: runner.Outcome) -> dict[str, str]:
    logger.info(
        "batch %s failed at step %s; running its %d points again in halves",
        batch.id,
        outcome.failed_step,
        len(batch.claims),
    )
    shutil.rmtree(rundir, ignore_errors=True)
    middle = len(batch.claims) // 2
    statuses = {}
    for half in (batch.claims[:middle], batch.claims[middle:]):
        statuses.update(batch_execute(Batch(half)))
    return statuses


def relative_init(init: dict[str, Any], rundir: Path) -> dict[str, Any]:
    """Init parameters with the run folder's paths made relative, so a re-run
    from the archive can point them at its own copy of the inputs."""
    prefix = f"{rundir}/"

    def relative(value: Any) -> Any:
        if isinstance(value, list):
            return [relative(v) for v in value]
        return value.removeprefix(prefix) if isinstance(value, str) else value

    return {name: relative(value) for name, value in init.items()}


def point_outcome(
    claim: Claim, outcome: runner.Outcome
) -> tuple[runner.Outcome, dict[str, Any] | None]:
    """The point's own view of the batch's outcome, and its result if it has
    one. A point whose fit failed is a failed run, whatever its neighbours did."""
    mine = runner.Outcome(
        outcome.status,
        outcome.reason,
        outcome.failed_step,
        outcome.steps,
        outcome.snapshot,
        claim.init,
    )
    if outcome.status != "succeeded":
        return mine, None
    try:
        result = read_result(outcome, claim.run.point)
    except InvalidInput as exc:
        mine.status, mine.reason = "failed", exc.message
        return mine, None
    if result["fit"]["status"] == "failed":
        mine.status, mine.reason = "failed", f"fit failed: {result['fit']['message']}"
        mine.failed_step = "fit"
    return mine, result


def conclude(
    claim: Claim,
    batch: Batch,
    beat: Heartbeat,
    rundir: Path,
    outcome: runner.Outcome,
    seconds: float,
) -> str:
    run_id = claim.run_id
    if outcome.status == "cancelled" or not services.run_heartbeat(
        run_id, claim.attempt
    ):
        # Cancelled, or taken over by another worker: this attempt records nothing.
        return str(Run.objects.values_list("status", flat=True).get(id=run_id))
    mine, result = point_outcome(claim, outcome)

    documents = {"run.json": provenance(claim, batch, mine, seconds)}
    documents["run.json"]["init"] = relative_init(claim.init, rundir)
    if result is not None:
        documents["result.json"] = result
    try:
        path, digest = write_archive(claim, batch, rundir, documents)
    except DiskFull as exc:
        # Nothing of the archive remains; the workspace is kept for the operators.
        services.run_fail(
            run_id, claim.attempt, f"the archive could not be written: {exc}"
        )
        return Status.FAILED
    if mine.status != "succeeded":
        services.run_fail(
            run_id, claim.attempt, mine.reason, mine.failed_step, path, result
        )
        logger.info(
            "run %s failed after %.1f s: %s",
            run_id,
            seconds,
            mine.reason.splitlines()[0] if mine.reason else "",
        )
        return Status.FAILED
    assert result is not None
    try:
        services.run_succeed(run_id, claim.attempt, result, path, digest)
    except Conflict:
        # Cancelled (or taken over) between the check above and now.
        return str(Run.objects.values_list("status", flat=True).get(id=run_id))
    logger.info("run %s succeeded in %.1f s", run_id, seconds)
    return Status.SUCCEEDED
