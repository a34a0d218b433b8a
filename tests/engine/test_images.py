"""`make images`: which recipes it builds, how it names them, and that a
second run builds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recast.engine.images import (
    BASE_IMAGE,
    RECIPE_LABEL,
    WHEEL_TARGET,
    catalogued_recipes,
    images_ensure,
)
from tests.conftest import REPO, WORKFLOWS


def pyhf_recipes(workflows: Path) -> list[Any]:
    return [r for r in catalogued_recipes(workflows) if r.name == "recast/pyhf"]


def test_each_declared_recipe_is_built_once_under_its_spec_tag() -> None:
    recipes = catalogued_recipes(WORKFLOWS)

    assert [(r.name, r.tag, r.folder) for r in recipes] == [
        (
            "recast/dilepton-selection",
            "1.0.0",
            WORKFLOWS / "demo-dilepton-events" / "images" / "selection",
        ),
        ("recast/pyhf", "0.7.6-1", WORKFLOWS / "public-likelihood" / "images" / "pyhf"),
    ]


def test_a_changed_requirements_file_is_a_new_recipe_tag(workflows_copy: Path) -> None:
    [before] = pyhf_recipes(workflows_copy)
    requirements = workflows_copy / "public-likelihood" / "images" / "pyhf"
    with (requirements / "requirements.txt").open("a") as pins:
        pins.write("iminuit==2.31.1\n")

    [after] = pyhf_recipes(workflows_copy)

    assert after.recipe_tag != before.recipe_tag
    assert after.recipe_tag == f"recipe-{after.sha256[:16]}"


def test_wheels_are_chosen_for_every_glibc_the_base_can_run() -> None:
    start = WHEEL_TARGET.index("--platform") + 1
    platforms = WHEEL_TARGET[start::2]

    assert "manylinux_2_27_x86_64" in platforms  # jaxlib 0.10's only tag
    assert "manylinux_2_36_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms


def test_a_second_run_builds_nothing(docker_engine: Any) -> None:
    built = images_ensure(
        docker_engine, catalogued_recipes(WORKFLOWS), REPO / "var" / "images"
    )

    assert built == 0
    for recipe in catalogued_recipes(WORKFLOWS):
        image = docker_engine.images.get(f"{recipe.name}:{recipe.tag}")
        assert image.labels[RECIPE_LABEL] == recipe.sha256
    assert docker_engine.images.get(BASE_IMAGE).id
