"""Shared fixtures. Each test session gets its own var/ folders; step
environments are shared across sessions (RECAST_ENVS_DIR) because building
one takes a minute."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

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
    monkeypatch.setattr("recast.reinterpretation.dispatch.dispatch", sent.extend)
    return sent
