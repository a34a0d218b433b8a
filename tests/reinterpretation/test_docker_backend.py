"""The demo analysis on the Docker backend gives the numbers it gives on the
local backend (its reference), with each step's image digest archived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recast.catalogue.models import Analysis
from recast.core.results import compare
from recast.reinterpretation.local import run_locally
from recast.reinterpretation.models import Run
from tests.conftest import DEMO

pytestmark = pytest.mark.slow


@pytest.mark.django_db
def test_the_demo_example_on_docker_equals_its_reference(
    demo: Analysis, docker_engine: Any, settings: Any
) -> None:
    settings.RECAST_BACKEND = "docker"

    summary = run_locally(DEMO, example=True)

    assert summary["status"] == "succeeded", summary["error"]
    run = Run.objects.get(id=summary["run"])
    rows = compare(demo.reference_result, run.result or {}, demo.reference_tolerance)
    assert [row for row in rows if not row["ok"]] == []
    assert run.backend == "docker"

    record = json.loads((Path(summary["archive"]) / "run.json").read_text())
    image = docker_engine.images.get("recast/pyhf:0.7.6-1")
    assert record["backend"] == "docker"
    assert [(s["name"], s["environment"]["image_id"]) for s in record["steps"]] == [
        (name, image.id) for name in ("patch", "fit", "summarise", "plot")
    ]
