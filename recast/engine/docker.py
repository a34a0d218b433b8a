"""The Docker backend: each step runs in a container of its image on a Docker
engine, isolated by default.

The container runs as an unprivileged user with a read-only root filesystem,
every capability dropped, no new privileges, no network unless the step asks
for it, memory and CPU limits, and a private /tmp. It sees the run's folder
read-only at the same path as the host, so paths in the step's command mean the
same inside; only the step's own output folder is writable.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.images import Image

from recast.engine import credentials
from recast.engine.events import CancelCheck, StepJob, StepOutcome
from recast.engine.images import RECIPE_LABEL, recipe_tag
from recast.engine.limits import Limits, step_limits
from recast.engine.local import SINGLE_THREAD, now

logger = logging.getLogger(__name__)

# The container's own private scratch space, never the host's /tmp.
STEP_TMP = "/tmp"  # noqa: S108

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 5
# The uid steps run as when the worker itself is root (never root inside).
STEP_UID = 1000
LABEL = "org.recast.step"
CREDENTIALS_MOUNT = credentials.CONTAINER_FOLDER


class CannotStart(Exception):
    """The engine cannot be reached, or the step's image is not on it."""


def step_user() -> int:
    """The worker's own uid, so outputs stay its files; 1000 for a root worker."""
    uid = os.getuid()
    return uid if uid != 0 else STEP_UID


def writable_by(folder: Path, uid: int) -> None:
    """A root worker hands the step's output folder to the step's uid."""
    if os.getuid() == 0:
        os.chown(folder, uid, uid)


def volumes(
    job: StepJob, root: Path | None, secrets: Path | None = None
) -> dict[str, dict[str, str]]:
    """Bind mounts: the run folder and the step's inputs read-only, its output
    folder read-write (mounted last, over the read-only run folder), and its
    credentials folder (if any) read-only at CREDENTIALS_MOUNT."""
    mounts = {path: {"bind": path, "mode": "ro"} for path in job.readonly}
    if root is not None:
        mounts[str(root)] = {"bind": str(root), "mode": "ro"}
    mounts[job.workdir] = {"bind": job.workdir, "mode": "rw"}
    if secrets is not None:
        mounts[str(secrets)] = {"bind": CREDENTIALS_MOUNT, "mode": "ro"}
    return mounts


def container_options(
    job: StepJob,
    limits: Limits,
    root: Path | None,
    uid: int,
    secrets: Path | None = None,
) -> dict[str, Any]:
    environment = {
        "HOME": STEP_TMP,
        "TMPDIR": STEP_TMP,
        "MPLCONFIGDIR": STEP_TMP,
        "LANG": "C.UTF-8",
        **SINGLE_THREAD,
        **job.env,
    }
    if secrets is not None:
        environment.update(credentials.variables(job.credentials, CREDENTIALS_MOUNT))
    return {
        "command": ["sh", "-c", job.command],
        "working_dir": job.workdir,
        "user": f"{uid}:{uid}",
        "environment": environment,
        "volumes": volumes(job, root, secrets),
        "read_only": True,
        "tmpfs": {STEP_TMP: "rw,nosuid,nodev,size=1g"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "network_mode": "bridge" if limits.network else "none",
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",
        "nano_cpus": limits.cpus * 1_000_000_000,
        "pids_limit": 1024,
        "detach": True,
    }


class DockerExecutor:
    """Runs each step as a container of ``image:tag`` on the engine.

    ``images`` maps image names to their catalogue records (with
    ``recipe_sha256``): an image whose label names another recipe is refused,
    so a run never uses an image built from a recipe other than its own.
    """

    name = "docker"

    def __init__(
        self,
        images: dict[str, dict[str, Any]],
        root: Path | None = None,
        memory_mb: int = 4096,
        cpus: int = 1,
        labels: dict[str, str] | None = None,
        client: docker.DockerClient | None = None,
        secrets_dir: Path | None = None,
    ) -> None:
        self.images = images
        # Where credentials folders are made: a path the engine sees as the
        # worker does (the engine bind-mounts it by its host path).
        self.secrets_dir = secrets_dir
        self.labels = labels or {}
        self.root = root
        self.memory_mb, self.cpus = memory_mb, cpus
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        """Connected on first use, so that choosing the backend needs no engine."""
        if self._client is None:
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise CannotStart(
                    f"the Docker engine cannot be reached ({exc})"
                ) from None
        return self._client

    def resolve(self, job: StepJob) -> Image:
        return self.resolve_image(job.image, job.tag)

    def image_identity(self, image: str, tag: str) -> str | None:
        """What the step cache keys on: the id (content digest) of the image
        this executor would run, or None when the engine does not have it."""
        try:
            return f"docker:{self.resolve_image(image, tag).id}"
        except CannotStart:
            return None

    def resolve_image(self, name: str, tag: str) -> Image:
        """The image to run: the spec's name and tag, checked against the recipe
        the catalogue recorded (its recipe-hash tag is taken if the name's tag
        points elsewhere, e.g. after the recipe was rebuilt)."""
        wanted = (self.images.get(name) or {}).get("recipe_sha256")
        candidates = [f"{name}:{tag}"]
        if wanted:
            candidates.append(f"{name}:{recipe_tag(wanted)}")
        for reference in candidates:
            try:
                image = self.client.images.get(reference)
            except docker.errors.ImageNotFound:
                continue
            if not wanted or image.labels.get(RECIPE_LABEL) == wanted:
                return image
        raise CannotStart(
            f"image {name}:{tag}"
            + (f" built from recipe {wanted[:16]}" if wanted else "")
            + " is not on the Docker engine (run `make images`)"
        )

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome:
        started = now()
        try:
            image = self.resolve(job)
        except CannotStart as exc:
            return StepOutcome(None, started, now(), f"could not start: {exc}")

        uid = step_user()
        writable_by(Path(job.workdir), uid)
        # The credentials folder lives as long as the container: removed
        # (after the container) however the step ends.
        owner = uid if os.getuid() == 0 else None
        given = credentials.handed_over(job.credentials, owner, self.secrets_dir)
        with given as secrets:
            exit_code, reason = self.contain(job, image, uid, secrets, cancelled)
        limits = step_limits(job.resources, self.memory_mb, self.cpus)
        environment = {
            "backend": self.name,
            "image": f"{job.image}:{job.tag}",
            "image_id": image.id,
            "repo_digests": image.attrs.get("RepoDigests") or [],
            "recipe_sha256": image.labels.get(RECIPE_LABEL, ""),
            "limits": {"memory_mb": limits.memory_mb, "cpus": limits.cpus},
            "network": limits.network,
            **credentials.record(job.credentials),
        }
        return StepOutcome(exit_code, started, now(), reason, environment)

    def contain(
        self,
        job: StepJob,
        image: Image,
        uid: int,
        secrets: Path | None,
        cancelled: CancelCheck,
    ) -> tuple[int | None, str]:
        """Create, start, wait for, log and remove the step's container."""
        limits = step_limits(job.resources, self.memory_mb, self.cpus)
        try:
            container = self.client.containers.create(
                image.id,
                **container_options(job, limits, self.root, uid, secrets),
                labels={**self.labels, LABEL: job.name},
            )
        except docker.errors.APIError as exc:
            reason = (
                f"could not start: the Docker engine refused it ({exc.explanation})"
            )
            return None, reason
        try:
            container.start()
            exit_code, reason = self.wait(container, job.timeout, cancelled)
            self.save_log(container, job.log_path)
        except docker.errors.APIError as exc:
            logger.warning("step %s: the Docker engine failed: %s", job.name, exc)
            exit_code, reason = None, f"was lost: the Docker engine failed ({exc})"
        finally:
            container.remove(force=True)
        return exit_code, reason

    def wait(
        self, container: Container, timeout: int, cancelled: CancelCheck
    ) -> tuple[int | None, str]:
        """Wait for the container; stop it on cancel or at the time limit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = container.wait(timeout=POLL_SECONDS)
                return int(status["StatusCode"]), oom_reason(container)
            except (
                requests.exceptions.ReadTimeout,
                requests.exceptions.ConnectionError,
            ):
                pass  # the wait's own read timeout: still running
            if cancelled():
                container.stop(timeout=STOP_GRACE_SECONDS)
                return None, "cancelled"
            if time.monotonic() > deadline:
                container.stop(timeout=STOP_GRACE_SECONDS)
                return None, f"timed out after {timeout} s"

    def save_log(self, container: Container, log_path: str) -> None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            for chunk in container.logs(stdout=True, stderr=True, stream=True):
                log.write(chunk)


def oom_reason(container: Container) -> str:
    container.reload()
    if container.attrs.get("State", {}).get("OOMKilled"):
        return "was stopped: it ran out of memory (raise its memory_mb)"
    return ""
