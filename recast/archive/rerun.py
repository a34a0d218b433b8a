"""Re-run a point from nothing but its archive, and compare the numbers.

The archive holds the workflow spec, the inputs, the init parameters (relative
to the archive), the image recipes and the result: enough to rebuild the step
environments and run the workflow again. No Django here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recast.catalogue.loader import recipe_sha256
from recast.core.results import largest_deviations, point_result
from recast.engine import runner
from recast.engine.environments import image_folder
from recast.engine.local import LocalExecutor


class RerunError(Exception):
    pass


@dataclass
class Comparison:
    status: str
    reason: str = ""
    deviations: dict[str, float] = field(default_factory=dict)

    def within(self, rtol: float) -> bool:
        return self.status == "succeeded" and all(
            d <= rtol for d in self.deviations.values()
        )


def archived_images(archive: Path, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    images = {}
    for image in record["images"]:
        folder = f"images/{image_folder(image['name'])}"
        recipe = archive / folder
        if not recipe.is_dir():
            raise RerunError(f"{folder}: the image recipe is not in the archive")
        if recipe_sha256(recipe) != image["recipe_sha256"]:
            raise RerunError(f"{folder}: differs from the recipe the run used")
        images[image["name"]] = {**image, "recipe": str(recipe)}
    return images


def absolute_init(init: dict[str, Any], archive: Path) -> dict[str, Any]:
    def absolute(value: Any) -> Any:
        if isinstance(value, list):
            return [absolute(v) for v in value]
        if isinstance(value, str) and value.startswith("inputs/"):
            return str(archive / value)
        return value

    return {name: absolute(value) for name, value in init.items()}


def archive_rerun(archive: Path, envs_dir: Path, workdir: Path) -> Comparison:
    """Run the archived point again in ``workdir`` (which must not exist)."""
    record = json.loads((archive / "run.json").read_text())
    if "init" not in record:
        raise RerunError("run.json: this archive does not record the init parameters")
    spec = json.loads((archive / "workflow" / "workflow.json").read_text())
    expected = json.loads((archive / "result.json").read_text())
    executor = LocalExecutor(envs_dir, archived_images(archive, record))

    outcome = runner.execute(
        spec,
        absolute_init(record["init"], archive),
        workdir,
        executor,
        observer=lambda event: None,
        cancelled=lambda: False,
    )
    if outcome.status != "succeeded":
        return Comparison(outcome.status, outcome.reason)
    obtained = point_result(outcome.outputs("summarise"), record["point"])
    if obtained is None:
        return Comparison("failed", "the re-run published no result for the point")
    return Comparison("succeeded", deviations=largest_deviations(expected, obtained))
