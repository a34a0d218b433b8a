"""The step policy at catalogue load: host mounts, privileged mode and unknown
environment types are refused, naming the step and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from recast.catalogue import loader
from recast.catalogue.lint import lint
from recast.catalogue.policy import environment_violations
from recast.core.errors import InvalidInput
from tests.conftest import DEMO


def with_patch_environment(workflows: Path, **change: Any) -> None:
    path = workflows / "public-likelihood" / "steps.yml"
    steps = yaml.safe_load(path.read_text())
    steps["patch"]["environment"].update(change)
    path.write_text(yaml.safe_dump(steps))


def load_error(workflows: Path) -> str:
    with pytest.raises(InvalidInput) as caught:
        loader.read_entry(workflows / DEMO, workflows)
    return caught.value.message


def test_a_step_asking_for_cvmfs_is_refused(workflows_copy: Path) -> None:
    with_patch_environment(workflows_copy, resources=["CVMFS"])

    assert load_error(workflows_copy) == (
        "workflows/public-likelihood/workflow.yml: step $.stages[0] (patch): "
        "environment.resources[0]: the step asks for a host mount (CVMFS) "
        "(ship what the step needs in its image or as an input file)"
    )


def test_a_step_asking_for_a_host_path_is_refused(workflows_copy: Path) -> None:
    with_patch_environment(workflows_copy, resources=[{"host_path": "/data"}])

    assert load_error(workflows_copy) == (
        "workflows/public-likelihood/workflow.yml: step $.stages[0] (patch): "
        "environment.resources[0].host_path: the step asks for a host mount "
        "(host path /data) (ship what the step needs in its image or as an "
        "input file)"
    )


def test_a_privileged_step_is_refused(workflows_copy: Path) -> None:
    with_patch_environment(workflows_copy, resources=["network", "privileged"])

    assert load_error(workflows_copy) == (
        "workflows/public-likelihood/workflow.yml: step $.stages[0] (patch): "
        "environment.resources[1]: the step asks for privileged mode "
        "(steps run unprivileged, with every capability dropped)"
    )


def test_lint_reports_what_the_loader_refuses(workflows_copy: Path) -> None:
    with_patch_environment(workflows_copy, resources=[{"privileged": True}])

    errors = [
        (f.path, f.message)
        for f in lint(workflows_copy / DEMO)
        if f.severity == "error"
    ]

    assert (
        "$.patch.environment.resources[0].privileged",
        "the step asks for privileged mode",
    ) in errors


def test_an_unknown_environment_type_is_one_violation_of_its_field() -> None:
    [violation] = environment_violations(
        {"environment_type": "localproc-env", "resources": ["CVMFS"]}
    )

    assert (violation.field, violation.message) == (
        "environment_type",
        "environment type 'localproc-env' cannot run on recast's backends",
    )


def test_network_and_limits_are_allowed() -> None:
    environment = {
        "environment_type": "docker-encapsulated",
        "image": "x",
        "resources": ["network", {"memory_mb": 8192}, {"cpus": 2}],
    }

    assert environment_violations(environment) == []
