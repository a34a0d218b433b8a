"""Run a whole yadage workflow on an executor."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yadage.backends.packtivitybackend import PacktivityBackend
from yadage.steering_api import steering_ctx

from recast.engine import speedups
from recast.engine.backend import Executor, RecastBackend
from recast.engine.cache import StepCache
from recast.engine.events import CancelCheck, Observer, StepEvent

logger = logging.getLogger(__name__)

# packtivity logs every published value to its own stderr handler; the
# engine's observer records what matters.
os.environ.setdefault("PACKTIVITY_LOGGING_DISABLE", "true")
speedups.apply()


@dataclass
class Outcome:
    status: str  # succeeded, failed or cancelled
    reason: str = ""
    failed_step: str = ""
    steps: list[StepEvent] = field(default_factory=list)
    snapshot: Path | None = None
    init: dict[str, Any] = field(default_factory=dict)

    def outputs(self, step: str) -> Any:
        for event in self.steps:
            if event.name == step and event.kind == "finished":
                return event.outputs
        return None


def execute(
    spec: dict[str, Any],
    init: dict[str, Any],
    workdir: Path,
    executor: Executor,
    observer: Observer,
    cancelled: CancelCheck,
    timeout: int = 3600,
    cache: StepCache | None = None,
    credentials: dict[str, str] | None = None,
) -> Outcome:
    """Run ``spec`` with ``init`` in ``workdir`` (which must not exist yet).

    Step logs go to ``workdir/_recast/logs``; yadage's snapshot to
    ``workdir/_yadage``. With a ``cache``, a step identical to one that
    succeeded before reuses its outputs instead of running. Every step is
    handed ``credentials`` (name -> value) while it runs. Returns how it
    ended; raises only on engine bugs.
    """
    if not init:
        # yadage runs nothing without init parameters, yet reports success.
        raise ValueError("a workflow needs init parameters")
    outcome = Outcome("succeeded", init=init)

    def record(event: StepEvent) -> None:
        outcome.steps.append(event)
        observer(event)

    logs = workdir / "_recast" / "logs"
    logs.mkdir(parents=True)
    backend = PacktivityBackend(
        packtivity_backend=RecastBackend(
            executor,
            record,
            logs,
            cancelled,
            timeout,
            cache.for_workdir(workdir) if cache else None,
            credentials,
        ),
        backendopts={},
    )
    try:
        with steering_ctx(
            f"local:{workdir}",
            workflow_json=spec,
            initdata=init,
            backend=backend,
            visualize=False,
            accept_metadir=True,
            updateinterval=0.01,
            loginterval=3600,
        ):
            pass
    except RuntimeError:
        # adage raises once the graph has finished with a failed node; the
        # failing step told the observer why.
        pass
    return conclude(outcome, workdir, cancelled)


def conclude(outcome: Outcome, workdir: Path, cancelled: CancelCheck) -> Outcome:
    outcome.snapshot = workdir / "_yadage" / "yadage_snapshot_workflow.json"
    failures = [e for e in outcome.steps if e.kind == "failed"]
    if cancelled():
        outcome.status, outcome.reason = "cancelled", "cancelled on request"
    elif failures:
        outcome.status, outcome.reason, outcome.failed_step = (
            "failed",
            failures[0].reason,
            failures[0].name,
        )
    elif not any(e.kind == "finished" for e in outcome.steps):
        outcome.status, outcome.reason = "failed", "the workflow ran no step"
    return outcome
