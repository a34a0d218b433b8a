"""What the engine reports while it runs a workflow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepJob:
    """One step, ready to run: its command, image and folders."""

    name: str
    command: str
    image: str
    tag: str
    workdir: str
    readonly: list[str]
    log_path: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 3600
    # The environment's ``resources`` as the spec gives them (see engine.limits).
    resources: list[Any] = field(default_factory=list)
    # Name -> value of the credentials the step is handed while it runs (see
    # engine.credentials); left out of the repr so that no log shows them.
    credentials: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class StepOutcome:
    exit_code: int | None
    started_at: str
    finished_at: str
    reason: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    # User plus system CPU time of the step's processes; None when the
    # executor cannot measure it.
    cpu_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.reason


@dataclass
class StepEvent:
    """``kind`` is started, finished or failed."""

    kind: str
    name: str
    command: str = ""
    image: str = ""
    log_path: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    reason: str = ""
    outputs: Any = None
    environment: dict[str, Any] = field(default_factory=dict)
    # The step cache's part: {key, hit, stored} or {key, hit, producer,
    # created_at} when the outputs were reused; empty when not cached.
    cache: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Observer = Callable[[StepEvent], None]
CancelCheck = Callable[[], bool]


class StepFailed(Exception):
    """Raised inside the engine when a step failed; carries the step's event."""

    def __init__(self, event: StepEvent) -> None:
        super().__init__(event.reason)
        self.event = event
