"""Shared fixtures. Each test session gets its own var/ folders; step
environments are shared across sessions (RECAST_ENVS_DIR) because building
one takes a minute."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache

from recast.catalogue import loader
from recast.catalogue.models import Analysis
from recast.catalogue.services import analysis_load

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
DEMO = "demo-stop-1l"
EVENTS = "demo-dilepton-events"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_storage(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp() / "var"
    settings.RECAST_WORK_DIR = base / "work"
    settings.RECAST_ARCHIVE_DIR = base / "archive"
    settings.RECAST_UPLOAD_DIR = base / "uploads"
    # A step cache per test: a test that wants a hit runs its step twice.
    settings.RECAST_STEP_CACHE_DIR = tmp_path_factory.mktemp("step-cache")


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Rate-limit counters live in the cache; each test starts with none, or the
    suite's own requests (thousands a minute from one address) would throttle
    the tests that follow."""
    cache.clear()


@pytest.fixture
def demo(db: None) -> Analysis:
    analysis, _, _ = analysis_load(loader.read_entry(WORKFLOWS / DEMO, WORKFLOWS))
    return analysis


@pytest.fixture
def events(db: None) -> Analysis:
    """The event-level demo analysis."""
    analysis, _, _ = analysis_load(loader.read_entry(WORKFLOWS / EVENTS, WORKFLOWS))
    return analysis


@pytest.fixture
def workflows_copy(tmp_path: Path) -> Path:
    """A writable copy of the workflows folder, to break on purpose."""
    target = tmp_path / "workflows"
    shutil.copytree(
        WORKFLOWS,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )
    return target


def envs_dir() -> Path:
    return Path(settings.RECAST_ENVS_DIR)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run ids handed to the queue. API tests stop at the queue: executing runs
    is the worker's part, covered by the worker and live-server tests."""
    sent: list[str] = []

    def dispatch(run_ids: list[str], batches: int | None = None) -> None:
        sent.extend(run_ids)

    monkeypatch.setattr("recast.reinterpretation.dispatch.dispatch", dispatch)
    return sent


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A real Docker engine (dockerd started if none runs) with the catalogued
    step images built (`make images`; skipped quickly when they are)."""
    from recast.engine.dockerd import EngineUnavailable, engine_ensure
    from recast.engine.images import catalogued_recipes, images_ensure

    try:
        client = engine_ensure(REPO / "var" / "images" / "dockerd.log")
    except EngineUnavailable as exc:
        if os.environ.get("RECAST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"RECAST_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(str(exc))
    images_ensure(client, catalogued_recipes(WORKFLOWS), REPO / "var" / "images")
    return client


@pytest.fixture(scope="session")
def kubernetes_validate() -> Any:
    """Check Kubernetes objects against the OpenAPI schemas of a current
    release (strict: unknown fields are errors). Returns a function of a YAML
    file that gives (exit code, output). The tool lives in its own virtual
    environment, built once from deploy/tools.txt."""
    import hashlib
    import subprocess
    import sys

    pins = REPO / "deploy" / "tools.txt"
    digest = hashlib.sha256(pins.read_bytes()).hexdigest()[:12]
    tool = REPO / "var" / "tools" / f"kubernetes-validate-{digest}"
    binary = tool / "bin" / "kubernetes-validate"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True)
        subprocess.run(
            [str(tool / "bin" / "pip"), "install", "-q", "-r", str(pins)], check=True
        )

    def validate(path: Path) -> tuple[int, str]:
        done = subprocess.run(
            [str(binary), "--strict", "--no-warn", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    return validate
