"""RECAST_BACKEND chooses the executor; the demo analysis on the Docker
backend gives the numbers it gives on the local backend (its reference), with
each step's image digest archived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recast.catalogue.models import Analysis
from recast.core.results import compare
from recast.engine.docker import DockerExecutor
from recast.engine.kubernetes import KubernetesExecutor
from recast.engine.local import LocalExecutor
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.local import run_locally
from recast.reinterpretation.models import Run
from recast.reinterpretation.services import request_submit
from tests.conftest import DEMO


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("local", LocalExecutor),
        ("docker", DockerExecutor),
        ("kubernetes", KubernetesExecutor),
    ],
)
def test_the_backend_setting_chooses_the_executor(
    backend: str, kind: type, demo: Analysis, settings: Any, tmp_path: Path
) -> None:
    settings.RECAST_BACKEND = backend
    settings.RECAST_K8S_WORKSPACE_ROOT = tmp_path
    point = check_point(demo, dict(demo.example_inputs), {}, "")
    run = request_submit(demo, [point], enqueue_runs=False).runs.get()

    batch = execution.Batch([execution.Claim(run, attempt=1)])
    executor = execution.executor_for(batch, tmp_path / "run")

    assert isinstance(executor, kind)
    if isinstance(executor, KubernetesExecutor):
        assert executor.config.workspace_root == tmp_path
        assert executor.config.labels == {
            "recast.io/request": str(run.request_id),
            "recast.io/run": str(run.id),
        }


@pytest.mark.slow
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
