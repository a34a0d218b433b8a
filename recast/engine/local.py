"""The local backend: a step runs as a process inside its image's environment."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recast.engine import credentials, environments, isolation
from recast.engine.events import CancelCheck, StepJob, StepOutcome
from recast.engine.limits import step_limits

# One thread per step: several steps share the cores, and BLAS and XLA give
# bit-for-bit repeatable numbers only with a fixed thread count.
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
POLL_SECONDS = 0.2


def now() -> str:
    return datetime.now(UTC).isoformat()


def compile_cache(venv: Path) -> Path:
    """The folder beside an environment where its steps keep compiled code
    (JAX's compilation cache). Only the steps of that one environment, whose
    code is the catalogued image's, ever write there; what a user submits is
    data, which selects entries by their hash but cannot write one of its own."""
    folder = venv.with_name(f"{venv.name}.xla-cache")
    folder.mkdir(exist_ok=True)
    return folder


def step_environment(venv: Path, job: StepJob) -> dict[str, str]:
    """A clean environment: nothing of the platform's (secrets included) leaks in."""
    scratch = Path(job.workdir) / ".tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "MPLCONFIGDIR": str(scratch),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(venv),
        # JAX's compilation cache, shared by every step of this environment
        # (README, "The numbers": what it holds, why provenance can ignore it).
        "JAX_COMPILATION_CACHE_DIR": str(compile_cache(venv)),
        **SINGLE_THREAD,
        **job.env,
    }


def reap(process: subprocess.Popen[bytes], block: bool) -> float | None:
    """Collect the step's exit status with its CPU time (user plus system) by
    os.wait4, which counts the process and every child it waited for (a
    shell's commands); None while the step still runs."""
    pid, status, usage = os.wait4(process.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def stop(process: subprocess.Popen[bytes]) -> float | None:
    """End the step's whole process group: a shell's children included."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return reap(process, block=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cpu = reap(process, block=False)
        if cpu is not None:
            return cpu
        time.sleep(POLL_SECONDS)
    os.killpg(process.pid, signal.SIGKILL)
    return reap(process, block=True)


def wait(
    process: subprocess.Popen[bytes], timeout: int, cancelled: CancelCheck
) -> tuple[str, float | None]:
    """Wait for the step; return a reason if it had to be stopped, and the CPU
    seconds it used."""
    deadline = time.monotonic() + timeout
    with exit_signal(process) as exited:
        while (cpu := reap(process, block=False)) is None:
            if cancelled():
                return "cancelled", stop(process)
            if time.monotonic() > deadline:
                return f"timed out after {timeout} s", stop(process)
            exited(POLL_SECONDS)
    return "", cpu


@contextlib.contextmanager
def exit_signal(process: subprocess.Popen[bytes]) -> Iterator[Callable[[float], None]]:
    """A wait of at most so many seconds that ends as soon as the step exits
    (a pidfd becomes readable then), so a short step costs no poll interval.
    The step is still reaped by os.wait4, which alone reports its CPU time."""
    try:
        descriptor = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        yield time.sleep  # no pidfd here: poll
        return
    try:
        yield lambda seconds: select.select([descriptor], [], [], seconds) and None
    finally:
        os.close(descriptor)


class LocalExecutor:
    """Runs each step as a process in its image's virtual environment.

    Given the run's folder (``root``), a step is isolated as
    ``isolation`` says (see engine.isolation): it sees that folder read-only,
    its own output folder writable, and no other run's. Without ``root`` (a
    re-run of one archive, on the user's own machine) it is not wrapped.
    """

    name = "local"

    def __init__(
        self,
        envs_dir: Path,
        images: dict[str, dict[str, Any]],
        root: Path | None = None,
        isolation: str = "auto",
    ) -> None:
        self.envs_dir = envs_dir
        self.images = images
        self.root = root
        self.isolation = isolation

    def prepare(self, image: str) -> dict[str, Any]:
        """Build (once) the environment of ``image``; return its description."""
        _, description = environments.ensure(self.envs_dir, self.images[image])
        return description

    def image_identity(self, image: str, tag: str) -> str | None:
        """What the step cache keys on: the recipe's hash (a local image is
        its recipe, built into a virtual environment)."""
        recipe = self.images.get(image)
        return f"recipe:{recipe['recipe_sha256']}" if recipe else None

    def isolated(self) -> bool:
        """Whether this step is wrapped; raises IsolationUnavailable when it
        must be and cannot."""
        return self.root is not None and isolation.wanted(self.isolation)

    def command(
        self, job: StepJob, venv: Path, wrapped: bool, secrets: Path | None
    ) -> list[str]:
        command = ["sh", "-c", job.command]
        if not wrapped or self.root is None:
            return command
        readable = [str(self.root), *job.readonly, *([str(secrets)] if secrets else [])]
        network = step_limits(job.resources, 0, 0).network
        return isolation.wrap(
            command, venv, readable, job.workdir, network, [str(compile_cache(venv))]
        )

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome:
        venv, description = environments.ensure(self.envs_dir, self.images[job.image])
        started = now()
        try:
            wrapped = self.isolated()
        except isolation.IsolationUnavailable as exc:
            return StepOutcome(None, started, now(), f"could not start: {exc}")
        Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
        with (
            credentials.handed_over(job.credentials) as secrets,
            open(job.log_path, "ab") as log,
        ):
            env = step_environment(venv, job)
            if secrets is not None:
                env.update(credentials.variables(job.credentials, secrets))
            process = subprocess.Popen(
                self.command(job, venv, wrapped, secrets),
                cwd=job.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            reason, cpu_seconds = wait(process, job.timeout, cancelled)
        environment = {
            "backend": self.name,
            "packages": description["packages"],
            "recipe_sha256": description["recipe_sha256"],
            "isolation": "bwrap" if wrapped else "none",
            **credentials.record(job.credentials),
        }
        return StepOutcome(
            process.returncode,
            started,
            now(),
            reason,
            environment,
            cpu_seconds=round(cpu_seconds, 3) if cpu_seconds is not None else None,
        )
