"""The local executor: a step runs in its image's environment, with a clean
environment, a time limit, and cancellation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recast.catalogue.loader import recipe_sha256
from recast.engine.events import StepJob
from recast.engine.local import LocalExecutor


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> LocalExecutor:
    recipe = tmp_path_factory.mktemp("recipe")
    (recipe / "requirements.txt").write_text("# nothing beyond the standard library\n")
    image = {
        "name": "test/plain",
        "tag": "1",
        "recipe": str(recipe),
        "recipe_sha256": recipe_sha256(recipe),
    }
    return LocalExecutor(tmp_path_factory.mktemp("envs"), {"test/plain": image})


def job(tmp_path: Path, command: str, timeout: int = 60) -> StepJob:
    return StepJob(
        name="step",
        command=command,
        image="test/plain",
        tag="1",
        workdir=str(tmp_path),
        readonly=[],
        log_path=str(tmp_path / "logs" / "step.log"),
        timeout=timeout,
    )


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_step_runs_in_its_environment_and_its_output_is_logged(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    outcome = executor.run(
        job(tmp_path, "python -c 'import sys; print(sys.prefix)'"), lambda: False
    )

    assert outcome.ok
    assert "test-plain-" in (tmp_path / "logs" / "step.log").read_text()


def test_a_step_sees_none_of_the_platforms_environment(
    executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECAST_SECRET_KEY", "do-not-leak")

    executor.run(job(tmp_path, "env"), lambda: False)

    seen = (tmp_path / "logs" / "step.log").read_text()
    assert "do-not-leak" not in seen
    assert "OPENBLAS_NUM_THREADS=1" in seen


def test_a_failing_step_reports_its_exit_code(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    outcome = executor.run(job(tmp_path, "echo broken >&2; exit 3"), lambda: False)

    assert (outcome.ok, outcome.exit_code, outcome.reason) == (False, 3, "")


def test_a_step_past_its_time_limit_is_stopped(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    started = time.monotonic()

    outcome = executor.run(job(tmp_path, "sleep 30", timeout=1), lambda: False)

    assert outcome.reason == "timed out after 1 s"
    assert time.monotonic() - started < 15


def test_a_cancelled_step_is_stopped_with_its_children(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 1

    outcome = executor.run(
        job(tmp_path, "sleep 30 & echo $! > child.pid; wait"),
        lambda: time.monotonic() > deadline,
    )

    child = int((tmp_path / "child.pid").read_text())
    assert outcome.reason == "cancelled"
    assert not alive(child)


def test_a_step_reports_the_cpu_time_of_its_processes(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    # A child of the shell burns about half a second of CPU; wall time spent
    # sleeping in another child is not CPU time.
    burn = "python -c 'import time; t = time.process_time(); "
    burn += 'exec("while time.process_time() - t < 0.5: pass")\''
    outcome = executor.run(job(tmp_path, f"{burn} && sleep 0.5"), lambda: False)

    assert outcome.ok
    assert outcome.cpu_seconds is not None
    assert 0.5 <= outcome.cpu_seconds < 1.5


def test_a_stopped_step_still_reports_its_cpu_time(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    outcome = executor.run(job(tmp_path, "sleep 30", timeout=1), lambda: False)

    assert outcome.reason == "timed out after 1 s"
    assert outcome.cpu_seconds is not None
    assert outcome.cpu_seconds < 1.0


def test_steps_of_one_environment_share_a_jax_compilation_cache(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    seen = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        executor.run(job(folder, "echo $JAX_COMPILATION_CACHE_DIR"), lambda: False)
        seen.append((folder / "logs" / "step.log").read_text().strip())

    venv = next(p for p in executor.envs_dir.iterdir() if (p / "bin").is_dir())
    assert seen == [f"{venv}.xla-cache"] * 2
