"""Local steps under bubblewrap: a step of one run sees its own run and
nothing of another's; time limits, cancel and CPU time still work."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from recast.catalogue.loader import recipe_sha256
from recast.engine import isolation
from recast.engine.events import StepJob
from recast.engine.local import LocalExecutor

pytestmark = pytest.mark.skipif(
    isolation.bwrap_works() is not None,
    reason=f"bubblewrap cannot run here: {isolation.bwrap_works()}",
)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    recipe = tmp_path_factory.mktemp("recipe")
    (recipe / "requirements.txt").write_text("# nothing beyond the standard library\n")
    return {
        "name": "test/plain",
        "tag": "1",
        "recipe": str(recipe),
        "recipe_sha256": recipe_sha256(recipe),
    }


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


def run_folder(work: Path, name: str) -> tuple[Path, Path]:
    """A run folder with an input and a step output folder, as a worker makes it."""
    root = work / name
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "signal.json").write_text(f'{{"run": "{name}"}}')
    step = root / "workflow" / "select"
    step.mkdir(parents=True)
    return root, step


def step(root: Path, folder: Path, command: str, timeout: int = 60) -> StepJob:
    return StepJob(
        name="select",
        command=command,
        image="test/plain",
        tag="1",
        workdir=str(folder),
        readonly=[],
        log_path=str(root / "workflow" / "_recast" / "logs" / "select.log"),
        timeout=timeout,
    )


def log_of(job: StepJob) -> str:
    return Path(job.log_path).read_text()


@pytest.fixture
def runs(tmp_path: Path) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    return run_folder(tmp_path, "run-a"), run_folder(tmp_path, "run-b")


def test_a_step_reads_its_own_run_and_writes_its_own_output_folder(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), _ = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    job = step(root, folder, f"cat {root}/inputs/signal.json > {folder}/copy.json")

    outcome = executor.run(job, lambda: False)

    assert outcome.ok, log_of(job)
    assert (folder / "copy.json").read_text() == '{"run": "run-a"}'
    assert outcome.environment["isolation"] == "bwrap"


def test_a_step_cannot_read_another_runs_workspace(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), (other, _) = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    job = step(root, folder, f"ls {other.parent}; cat {other}/inputs/signal.json")

    outcome = executor.run(job, lambda: False)

    assert outcome.exit_code != 0
    listing, error = log_of(job).splitlines()
    assert listing == "run-a"  # the work folder seems to hold this run alone
    assert error.endswith("run-b/inputs/signal.json: No such file or directory")


def test_a_step_cannot_write_another_runs_workspace_or_its_own_inputs(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), (_, other_folder) = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    planted = other_folder / "planted.txt"

    into_other = executor.run(step(root, folder, f"echo x > {planted}"), lambda: False)
    into_inputs = executor.run(
        step(root, folder, f"echo x > {root}/inputs/signal.json"), lambda: False
    )

    assert into_other.exit_code != 0 and not planted.exists()
    assert into_inputs.exit_code != 0
    assert (root / "inputs" / "signal.json").read_text() == '{"run": "run-a"}'


def test_a_step_sees_nothing_of_the_hosts_files_beyond_the_system(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), _ = runs
    beside = root.parent / "platform-secret"
    beside.write_text("secret")
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    job = step(root, folder, f"ls /home /etc/shadow {beside} /var; ls /usr/bin/env")

    executor.run(job, lambda: False)

    seen = log_of(job).splitlines()
    assert seen == [
        "ls: cannot access '/home': No such file or directory",
        "ls: cannot access '/etc/shadow': No such file or directory",
        f"ls: cannot access '{beside}': No such file or directory",
        "ls: cannot access '/var': No such file or directory",
        "/usr/bin/env",
    ]


def test_an_isolated_step_runs_python_and_counts_its_cpu_time(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), _ = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    burn = "python -c 'import time; t = time.process_time(); "
    burn += 'exec("while time.process_time() - t < 0.5: pass")\''

    outcome = executor.run(step(root, folder, burn), lambda: False)

    assert outcome.ok
    assert outcome.cpu_seconds is not None
    assert 0.5 <= outcome.cpu_seconds < 1.5


def sandboxed_sleepers(marker: str) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in stat.read_bytes().decode(errors="replace"):
                found.append(stat.parent.name)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("how", ["cancelled", "timed out after 1 s"])
def test_an_isolated_step_stopped_early_leaves_no_process(
    envs: Path,
    image: dict[str, str],
    runs: tuple[tuple[Path, Path], ...],
    how: str,
) -> None:
    (root, folder), _ = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    marker = f"{time.monotonic_ns() % 1000}.{len(how)}17"
    deadline = time.monotonic() + 1

    outcome = executor.run(
        step(
            root, folder, f"sleep {marker} & wait", timeout=1 if "timed" in how else 60
        ),
        (lambda: time.monotonic() > deadline) if how == "cancelled" else lambda: False,
    )

    assert outcome.reason == how
    time.sleep(0.5)
    assert sandboxed_sleepers(f"sleep\x00{marker}") == []


def test_auto_runs_unwrapped_with_a_warning_where_bwrap_cannot_run(
    envs: Path,
    image: dict[str, str],
    runs: tuple[tuple[Path, Path], ...],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (root, folder), _ = runs
    monkeypatch.setenv("PATH", "/nonexistent")
    isolation.bwrap_works.cache_clear()
    isolation.warn_once.cache_clear()
    try:
        executor = LocalExecutor(envs, {"test/plain": image}, root, "auto")
        with caplog.at_level(logging.WARNING, "recast.engine.isolation"):
            outcome = executor.run(step(root, folder, "true"), lambda: False)
    finally:
        isolation.bwrap_works.cache_clear()
        isolation.warn_once.cache_clear()

    assert outcome.ok
    assert outcome.environment["isolation"] == "none"
    assert "local steps run WITHOUT isolation" in caplog.text


def test_bwrap_mode_refuses_a_step_where_bwrap_cannot_run(
    envs: Path,
    image: dict[str, str],
    runs: tuple[tuple[Path, Path], ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (root, folder), _ = runs
    monkeypatch.setenv("PATH", "/nonexistent")
    isolation.bwrap_works.cache_clear()
    try:
        executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
        outcome = executor.run(step(root, folder, "true"), lambda: False)
    finally:
        isolation.bwrap_works.cache_clear()

    assert outcome.reason == (
        "could not start: local steps must be isolated "
        "(RECAST_LOCAL_ISOLATION=bwrap), but bubblewrap (bwrap) is not installed"
    )


@pytest.mark.parametrize("ending", ["exit 0", "exit 3", "sleep 30"])
def test_credentials_are_handed_over_and_removed_however_the_step_ends(
    envs: Path,
    image: dict[str, str],
    runs: tuple[tuple[Path, Path], ...],
    ending: str,
) -> None:
    (root, folder), _ = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    command = 'cat "$RECAST_CREDENTIAL_EOS_TOKEN"; echo; echo "$RECAST_CREDENTIALS_DIR"'
    job = step(root, folder, f"{command}; {ending}", timeout=2)
    job.credentials = {"eos-token": "tok-3Zb8Qw1x"}

    outcome = executor.run(job, lambda: False)

    value, handed = log_of(job).splitlines()[:2]  # then "Terminated" on a stop
    assert value == "tok-3Zb8Qw1x"
    assert not handed.startswith(str(root)) and not Path(handed).exists()
    assert outcome.ok == (ending == "exit 0")
    assert outcome.environment["credentials"] == ["eos-token"]


def test_an_isolated_step_has_no_capability_and_no_user_namespace_of_its_own(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    (root, folder), _ = runs
    executor = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    command = "id -u; grep -E 'Cap(Eff|Bnd)' /proc/self/status; "
    command += "unshare --user true 2>/dev/null || echo no-user-namespace"
    job = step(root, folder, command)

    executor.run(job, lambda: False)

    assert log_of(job).split() == [
        "1000",
        "CapEff:",
        "0000000000000000",
        "CapBnd:",
        "0000000000000000",
        "no-user-namespace",
    ]


def test_steps_of_one_environment_share_its_compilation_cache_in_the_sandbox(
    envs: Path, image: dict[str, str], runs: tuple[tuple[Path, Path], ...]
) -> None:
    """JAX's compilation cache beside the environment is writable inside the
    sandbox, so a second run's step finds what the first compiled."""
    (root, folder), (other, other_folder) = runs
    write = 'echo compiled > "$JAX_COMPILATION_CACHE_DIR/entry"'
    read = 'cat "$JAX_COMPILATION_CACHE_DIR/entry"'

    first = LocalExecutor(envs, {"test/plain": image}, root, "bwrap")
    second = LocalExecutor(envs, {"test/plain": image}, other, "bwrap")
    wrote = first.run(step(root, folder, write), lambda: False)
    job = step(other, other_folder, read)
    read_back = second.run(job, lambda: False)

    assert wrote.ok and read_back.ok, log_of(job)
    assert log_of(job) == "compiled\n"
