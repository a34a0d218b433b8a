"""The Docker executor against a real engine: isolation, limits, time limit,
cancellation, logs, removal, and the image digest recorded."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from recast.catalogue.loader import recipe_sha256
from recast.engine.docker import LABEL, DockerExecutor
from recast.engine.events import StepJob
from tests.conftest import WORKFLOWS

RECIPE = WORKFLOWS / "public-likelihood" / "images" / "pyhf"
IMAGE = "recast/pyhf"
TAG = "0.7.6-1"
RUN = f"test-{uuid.uuid4().hex[:12]}"  # this session's containers, for leftovers()


@pytest.fixture
def executor(docker_engine: Any, tmp_path: Path) -> DockerExecutor:
    images = {
        IMAGE: {"name": IMAGE, "tag": TAG, "recipe_sha256": recipe_sha256(RECIPE)}
    }
    return DockerExecutor(
        images,
        tmp_path,
        memory_mb=512,
        cpus=1,
        labels={"recast.io/run": RUN},
        client=docker_engine,
    )


def step(tmp_path: Path, command: str, **options: Any) -> StepJob:
    """A step whose output folder is out/, with inputs/ beside it."""
    tmp_path.chmod(0o755)
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "inputs").mkdir(exist_ok=True)
    (tmp_path / "inputs" / "signal.json").write_text("{}")
    defaults: dict[str, Any] = {
        "name": "probe",
        "command": command,
        "image": IMAGE,
        "tag": TAG,
        "workdir": str(tmp_path / "out"),
        "readonly": [str(tmp_path / "inputs")],
        "log_path": str(tmp_path / "logs" / "probe.log"),
        "timeout": 60,
    }
    return StepJob(**{**defaults, **options})


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "probe.log").read_text()


def leftovers(engine: Any) -> list[Any]:
    """This session's step containers still on the engine."""
    mine = {"label": [LABEL, f"recast.io/run={RUN}"]}
    return list(engine.containers.list(all=True, filters=mine))


def test_a_step_runs_unprivileged_without_network_in_a_read_only_root(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    command = (
        "id -u; grep CapEff /proc/self/status; "
        "touch /opt/x 2>/dev/null || echo root-is-read-only; "
        "python3 -c 'import socket; socket.create_connection((\"192.0.2.1\", 80), 1)'"
        " 2>/dev/null || echo no-network; "
        "grep NoNewPrivs /proc/self/status"
    )

    outcome = executor.run(step(tmp_path, command), lambda: False)

    assert outcome.ok, log_of(tmp_path)
    lines = log_of(tmp_path).split()
    assert lines[0] == "1000"
    assert "0000000000000000" in lines
    assert "root-is-read-only" in lines and "no-network" in lines
    assert lines[-2:] == ["NoNewPrivs:", "1"]
    assert leftovers(docker_engine) == []


def test_inputs_are_read_only_and_only_the_output_folder_is_writable(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    command = (
        f"cat {inputs}/signal.json; echo; "
        f"{{ echo x > {inputs}/signal.json; }} 2>/dev/null || echo inputs-read-only; "
        f"touch {tmp_path}/beside 2>/dev/null || echo run-folder-read-only; "
        "echo result > out.txt; echo scratch > /tmp/s && cat /tmp/s"
    )

    outcome = executor.run(step(tmp_path, command), lambda: False)

    assert outcome.ok, log_of(tmp_path)
    assert log_of(tmp_path).split() == [
        "{}",
        "inputs-read-only",
        "run-folder-read-only",
        "scratch",
    ]
    assert (tmp_path / "out" / "out.txt").read_text() == "result\n"
    assert not (tmp_path / "beside").exists()


def test_the_memory_limit_is_the_default_or_what_the_step_asks(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    # cgroup v1 and v2 name the limit differently; one of them exists.
    command = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/memory.max 2>/dev/null; true"
    )

    default = executor.run(step(tmp_path, command), lambda: False)
    asked = executor.run(
        step(tmp_path, command, resources=[{"memory_mb": 256}]), lambda: False
    )

    assert log_of(tmp_path).split() == [str(512 << 20), str(256 << 20)]
    assert default.environment["limits"] == {"memory_mb": 512, "cpus": 1}
    assert asked.environment["limits"] == {"memory_mb": 256, "cpus": 1}


def test_the_image_digest_and_recipe_are_recorded(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    outcome = executor.run(step(tmp_path, "true"), lambda: False)

    image = docker_engine.images.get(f"{IMAGE}:{TAG}")
    assert outcome.environment["backend"] == "docker"
    assert outcome.environment["image_id"] == image.id
    assert outcome.environment["image_id"].startswith("sha256:")
    assert outcome.environment["recipe_sha256"] == recipe_sha256(RECIPE)


def test_the_step_cache_keys_on_the_image_id(
    executor: DockerExecutor, docker_engine: Any
) -> None:
    image = docker_engine.images.get(f"{IMAGE}:{TAG}")

    assert executor.image_identity(IMAGE, TAG) == f"docker:{image.id}"
    assert executor.image_identity("recast/missing", "1") is None


def test_a_failing_step_reports_its_exit_code_and_log(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    outcome = executor.run(step(tmp_path, "echo broken >&2; exit 3"), lambda: False)

    assert (outcome.ok, outcome.exit_code, outcome.reason) == (False, 3, "")
    assert log_of(tmp_path) == "broken\n"


def test_a_step_past_its_time_limit_is_stopped_and_removed(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    started = time.monotonic()

    outcome = executor.run(step(tmp_path, "sleep 60", timeout=2), lambda: False)

    assert outcome.reason == "timed out after 2 s"
    assert time.monotonic() - started < 30
    assert leftovers(docker_engine) == []


def test_cancel_stops_the_container(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()

    outcome = executor.run(step(tmp_path, "echo started; sleep 60"), cancel.is_set)

    assert outcome.reason == "cancelled"
    assert log_of(tmp_path) == "started\n"
    assert leftovers(docker_engine) == []


def test_an_image_that_is_not_built_is_a_clear_failure(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    outcome = executor.run(
        step(tmp_path, "true", image="recast/missing", tag="1"), lambda: False
    )

    assert outcome.reason == (
        "could not start: image recast/missing:1 is not on the Docker engine "
        "(run `make images`)"
    )


def test_a_rebuilt_tag_falls_back_to_the_image_of_the_recorded_recipe(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    outcome = executor.run(step(tmp_path, "true", tag="9.9-elsewhere"), lambda: False)

    built = docker_engine.images.get(f"{IMAGE}:{TAG}")
    assert (outcome.ok, outcome.environment["image_id"]) == (True, built.id)


def test_an_image_built_from_another_recipe_is_refused(
    docker_engine: Any, tmp_path: Path
) -> None:
    images = {IMAGE: {"name": IMAGE, "tag": TAG, "recipe_sha256": "0" * 64}}
    executor = DockerExecutor(images, tmp_path, client=docker_engine)

    outcome = executor.run(step(tmp_path, "true"), lambda: False)

    assert outcome.reason == (
        f"could not start: image {IMAGE}:{TAG} built from recipe 0000000000000000 "
        "is not on the Docker engine (run `make images`)"
    )


# docker-py leaves the socket of a failed connection to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreachable_engine_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    executor = DockerExecutor({}, tmp_path)

    outcome = executor.run(step(tmp_path, "true"), lambda: False)
    gc.collect()

    assert outcome.reason.startswith(
        "could not start: the Docker engine cannot be reached ("
    )


def test_a_container_the_engine_refuses_fails_the_step_with_its_reason(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    job = step(tmp_path, "true", resources=[{"memory_mb": 1}])

    outcome = executor.run(job, lambda: False)

    assert outcome.reason == (
        "could not start: the Docker engine refused it "
        "(Minimum memory limit allowed is 6MB)"
    )
    assert leftovers(docker_engine) == []


def test_a_step_cannot_see_another_runs_folder(
    executor: DockerExecutor, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other-run")
    (other / "private.json").write_text("{}")
    command = f"ls {other} 2>/dev/null || echo other-run-unseen"

    outcome = executor.run(step(tmp_path, command), lambda: False)

    assert outcome.ok, log_of(tmp_path)
    assert log_of(tmp_path).split() == ["other-run-unseen"]


def test_a_step_reads_its_credentials_from_a_read_only_folder_removed_after(
    executor: DockerExecutor, tmp_path: Path, docker_engine: Any
) -> None:
    command = (
        'cat "$RECAST_CREDENTIAL_EOS_TOKEN"; echo; echo "$RECAST_CREDENTIALS_DIR"; '
        'ls -ln "$RECAST_CREDENTIALS_DIR" | tail -1 | cut -c1-10; '
        '{ echo x > "$RECAST_CREDENTIAL_EOS_TOKEN"; } 2>/dev/null || echo read-only; '
        "mount | grep -c recast/credentials"
    )
    job = step(tmp_path, command, credentials={"eos-token": "tok-3Zb8Qw1x"})

    outcome = executor.run(job, lambda: False)

    assert outcome.ok, log_of(tmp_path)
    assert log_of(tmp_path).split() == [
        "tok-3Zb8Qw1x",
        "/run/recast/credentials",
        "-rw-------",
        "read-only",
        "1",
    ]
    assert outcome.environment["credentials"] == ["eos-token"]
    assert list(Path("/dev/shm").glob("recast-credentials-*")) == []
    assert leftovers(docker_engine) == []
