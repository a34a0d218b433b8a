"""A packtivity backend that hands each step to one of recast's executors.

yadage asks it to ``submit`` a step; it builds the step's command from the
spec (with packtivity's own handlers, so a spec means here what it means in
yadage), runs it to the end on the executor, publishes the outputs and tells
the observer. Steps run in the foreground: parallelism comes from running
several workflows, never from threads inside one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from packtivity import syncbackends
from packtivity.asyncbackends import ForegroundProxy

from recast.engine import cache as step_cache
from recast.engine import credentials as step_credentials
from recast.engine.cache import StepCache
from recast.engine.events import CancelCheck, Observer, StepEvent, StepJob, StepOutcome

logger = logging.getLogger(__name__)
LOG_TAIL_LINES = 20


class Executor(Protocol):
    name: str

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome: ...


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def failure_reason(name: str, outcome: StepOutcome, log_path: str) -> str:
    if outcome.reason:
        return f"step {name} {outcome.reason}"
    tail = log_tail(log_path)
    return f"step {name} failed with exit code {outcome.exit_code}" + (
        f":\n{tail}" if tail else ""
    )


class RecastBackend:
    """The packtivity async-backend interface, as yadage's PacktivityBackend uses it."""

    def __init__(
        self,
        executor: Executor,
        observer: Observer,
        logs_dir: Path,
        cancelled: CancelCheck,
        timeout: int,
        cache: StepCache | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.executor = executor
        self.credentials = credentials or {}
        self.cache = cache
        self.observer = observer
        self.logs_dir = logs_dir
        self.cancelled = cancelled
        self.timeout = timeout
        self.pack_config = syncbackends.packconfig()

    def job(
        self, spec: dict[str, Any], parameters: Any, state: Any, name: str
    ) -> StepJob:
        command = syncbackends.build_job(
            spec["process"], parameters, state, self.pack_config
        )
        if "command" not in command:
            raise ValueError(
                f"step {name}: only string-interpolated-cmd processes can run here"
            )
        environment = spec["environment"]
        return StepJob(
            name=name,
            command=command["command"],
            image=environment["image"],
            tag=environment.get("imagetag", "latest"),
            workdir=state.readwrite[0],
            readonly=list(state.readonly),
            log_path=str(self.logs_dir / f"{name}.log"),
            env={str(k): str(v) for k, v in (environment.get("env") or {}).items()},
            timeout=self.timeout,
            resources=list(environment.get("resources") or []),
            credentials=dict(self.credentials),
        )

    def submit(
        self, spec: dict[str, Any], parameters: Any, state: Any, metadata: Any = None
    ) -> ForegroundProxy:
        name = (metadata or {}).get("name", "step")
        parameters, state = syncbackends.finalize_inputs(parameters, state)
        state.ensure()
        job = self.job(spec, parameters, state, name)
        self.observer(
            StepEvent(
                "started", name, job.command, f"{job.image}:{job.tag}", job.log_path
            )
        )

        try:
            outcome, cached = step_cache.run_step(
                self.cache, self.executor, job, parameters.json(), self.cancelled
            )
        finally:
            # Before anything reads the log (the failure reason quotes it).
            step_credentials.scrub_file(Path(job.log_path), job.credentials)
        event = StepEvent(
            "finished",
            name,
            job.command,
            f"{job.image}:{job.tag}",
            job.log_path,
            outcome.started_at,
            outcome.finished_at,
            outcome.exit_code,
            environment=outcome.environment,
            cache=cached,
            cpu_seconds=outcome.cpu_seconds,
        )
        if not outcome.ok:
            event.kind, event.reason = (
                "failed",
                failure_reason(name, outcome, job.log_path),
            )
            self.observer(event)
            return ForegroundProxy(
                None, None, success=False, details={"reason": event.reason}
            )

        published = syncbackends.publish(
            spec["publisher"], parameters, state, self.pack_config
        )
        event.outputs = published.json()
        self.observer(event)
        return ForegroundProxy(published.json(), state.datamodel, success=True)

    def prepublish(self, spec: dict[str, Any], parameters: Any, state: Any) -> Any:
        return syncbackends.prepublish(spec, parameters, state, self.pack_config)

    def result(self, proxy: ForegroundProxy) -> Any:
        from packtivity import datamodel

        return datamodel.create(proxy.resultdata, proxy.datamodel)

    def ready(self, proxy: ForegroundProxy) -> bool:
        return True

    def successful(self, proxy: ForegroundProxy) -> bool:
        return bool(proxy.success)

    def fail_info(self, proxy: ForegroundProxy) -> str:
        return str((proxy.details() or {}).get("reason", ""))
