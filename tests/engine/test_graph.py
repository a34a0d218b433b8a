"""The graph of steps drawn as SVG: layout, states and escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from recast.catalogue.loader import load_spec
from recast.engine.graph import render
from tests.conftest import WORKFLOWS

SVG = "{http://www.w3.org/2000/svg}"
ATLAS_STYLE = Path(__file__).parent.parent / "catalogue" / "specs" / "atlas-style"


def demo_spec() -> dict[str, Any]:
    return load_spec(WORKFLOWS / "public-likelihood", "workflow.yml", "test")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (SVG the test itself drew)


def stages(svg: str) -> dict[str, str]:
    """Each stage's path and its state class, from the drawn SVG."""
    root = parse(svg)
    found = {}
    for group in root.iter(f"{SVG}g"):
        classes = group.get("class", "").split()
        state = next(c for c in classes if c.startswith("state-"))
        found[group.get("data-stage", "")] = state.removeprefix("state-")
    return found


def labels(svg: str) -> list[str]:
    return [t.text or "" for t in parse(svg).iter(f"{SVG}text")]


def test_a_spec_is_drawn_before_a_run_with_the_image_of_each_step() -> None:
    drawn = render(demo_spec())

    assert stages(drawn) == {
        "init": "static",
        "patch": "static",
        "fit": "static",
        "summarise": "static",
        "plot": "static",
    }
    assert labels(drawn)[:4] == ["init", "inputs", "patch", "recast/pyhf:0.7.6-1"]
    assert drawn.count('class="edge"') == 4


def test_steps_are_placed_below_what_they_depend_on() -> None:
    root = parse(render(demo_spec()))
    top = {
        g.get("data-stage"): float(g.find(f"{SVG}rect").get("y"))  # type: ignore[union-attr]
        for g in root.iter(f"{SVG}g")
    }

    assert top["init"] < top["patch"] < top["fit"] < top["summarise"]
    assert top["summarise"] == top["plot"]


def test_step_states_colour_the_boxes_and_unstarted_steps_are_pending() -> None:
    drawn = render(demo_spec(), states={"patch": "succeeded", "fit": "running"})

    assert stages(drawn) == {
        "init": "succeeded",
        "patch": "succeeded",
        "fit": "running",
        "summarise": "pending",
        "plot": "pending",
    }
    assert "patch: succeeded; fit: running; summarise: pending" in drawn


def test_before_any_step_starts_every_box_is_pending() -> None:
    found = stages(render(demo_spec(), states={}))

    assert set(found.values()) == {"pending"}


def test_states_come_from_a_yadage_snapshot() -> None:
    snapshot = {
        "dag": {
            "nodes": [
                node("init", "init", "SUCCESS"),
                node("patch", "patch", "SUCCESS"),
                node("fit", "fit", "FAILED"),
            ]
        }
    }

    found = stages(render(demo_spec(), snapshot=snapshot))

    assert (found["patch"], found["fit"], found["plot"]) == (
        "succeeded",
        "failed",
        "pending",
    )


def node(name: str, stage: str, state: str, offset: str = "") -> dict[str, Any]:
    metadata = {"name": name, "wflow_stage": stage, "wflow_offset": offset}
    return {"name": name, "state": state, "task": {"metadata": metadata}}


def test_a_scatter_stage_counts_its_steps_and_a_subworkflow_nests() -> None:
    spec = load_spec(ATLAS_STYLE, "workflow.yml", "test")
    states = {"selection_0": "succeeded", "selection_1": "running"}

    drawn = render(spec, states=states)

    assert stages(drawn) == {
        "init": "succeeded",
        "selection": "running",
        "merge": "pending",
        "statistics": "pending",
        "statistics/init": "pending",
        "statistics/fit": "pending",
    }
    assert "selection \N{MULTIPLICATION SIGN}2" in labels(drawn)


def test_a_snapshot_of_a_subworkflow_reaches_its_inner_stages() -> None:
    spec = load_spec(ATLAS_STYLE, "workflow.yml", "test")
    snapshot = {"dag": {"nodes": [node("fit", "fit", "SUCCESS", "statistics")]}}

    found = stages(render(spec, snapshot=snapshot))

    assert (found["statistics/fit"], found["statistics"]) == ("succeeded", "succeeded")


def test_dependencies_given_as_yadage_expressions_become_edges() -> None:
    spec = {
        "stages": [
            {"name": "a", "dependencies": ["init"], "scheduler": {}},
            {
                "name": "b",
                "dependencies": {
                    "dependency_type": "jsonpath_ready",
                    "expressions": ["a"],
                },
                "scheduler": {},
            },
        ]
    }

    assert render(spec).count('class="edge"') == 2


def test_every_label_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    spec = {
        "stages": [
            {
                "name": evil,
                "dependencies": ["init"],
                "scheduler": {"step": {"environment": {"image": '"><img src=x>'}}},
            }
        ]
    }

    drawn = render(spec, title="<b>title</b>")
    root = parse(drawn)

    assert "<script" not in drawn and "<img" not in drawn and "<b>" not in drawn
    assert not list(root.iter(f"{SVG}script"))
    assert labels(drawn)[2:4] == [evil, '"><img src=x>']
