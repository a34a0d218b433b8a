"""An event-level analysis: signal event files in, through every interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.catalogue.services import catalogue_load
from recast.core.errors import InvalidInput
from recast.reinterpretation.execution import Batch, Claim, materialise
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.local import given_inputs
from recast.reinterpretation.services import request_submit
from recast.storage.services import blob_read
from tests.api.conftest import client_for, error
from tests.conftest import EVENTS, WORKFLOWS

FOLDER = WORKFLOWS / EVENTS
SIGNALS = [FOLDER / "example" / f"zprime_1500_{part}.root" for part in "ab"]


@pytest.fixture
def as_alice(db: None) -> APIClient:
    return client_for(User.objects.create_user("alice"))


def test_it_loads_with_its_preserved_files_and_a_list_of_example_files(
    events: Analysis,
) -> None:
    version = events.current_workflow()

    assert events.kind == "event-level"
    assert sorted(version.preserved) == ["background", "observed"]
    assert (
        blob_read(version.preserved["observed"])
        == (FOLDER / "data" / "observed.root").read_bytes()
    )
    assert [
        blob_read(s.removeprefix("sha256:")) for s in events.example_inputs["signals"]
    ] == [path.read_bytes() for path in SIGNALS]
    assert [image["name"] for image in version.images] == [
        "recast/dilepton-selection",
        "recast/pyhf",
    ]


@pytest.mark.django_db
def test_a_changed_preserved_file_adds_a_workflow_version(
    workflows_copy: Path,
) -> None:
    catalogue_load(workflows_copy, [EVENTS])
    observed = workflows_copy / EVENTS / "data" / "observed.root"
    observed.write_bytes(observed.read_bytes() + b"\0")

    [outcome] = catalogue_load(workflows_copy, [EVENTS])

    assert (outcome.error, outcome.version, outcome.created) == (None, 2, True)


@pytest.mark.django_db
def test_a_preserved_file_may_not_take_the_name_of_an_input(
    workflows_copy: Path,
) -> None:
    entry = workflows_copy / EVENTS / "recast.yml"
    document = yaml.safe_load(entry.read_text())
    document["preserved"]["cross_section_fb"] = "data/observed.root"
    entry.write_text(yaml.safe_dump(document))

    [outcome] = catalogue_load(workflows_copy, [EVENTS])

    assert outcome.error == (
        f"workflows/{EVENTS}/recast.yml: $.preserved.cross_section_fb: the name is "
        "taken by "
        "an input or by the platform; choose another"
    )


def test_uploaded_event_files_make_one_point_with_its_model_parameters(
    events: Analysis,
) -> None:
    contents = [path.read_bytes() for path in SIGNALS]

    point = check_point(
        events,
        {"cross_section_fb": 0.1, "model_parameters": {"m_zprime": 1500}},
        {"signals": contents},
        "zp",
    )

    assert (point.point, point.model_parameters) == ("zp", {"m_zprime": 1500})
    assert sorted(point.new_files) == ["signals[0]", "signals[1]"]
    assert point.new_files["signals[1]"] == contents[1]
    assert all(ref.startswith("sha256:") for ref in point.inputs["signals"])


def test_command_line_inputs_read_files_and_keep_values(events: Analysis) -> None:
    inputs, uploads, name = given_inputs(
        events,
        [
            ("signals", SIGNALS[0]),
            ("signals", SIGNALS[1]),
            ("cross_section_fb", 0.04),
            ("model_parameters", {"m_zprime": 1500}),
        ],
    )

    assert inputs == {"cross_section_fb": 0.04, "model_parameters": {"m_zprime": 1500}}
    assert uploads == {"signals": [path.read_bytes() for path in SIGNALS]}
    assert name == "zprime_1500_a"


def test_a_list_entry_that_is_no_file_is_named_by_its_index(
    events: Analysis,
) -> None:
    good = events.example_inputs["signals"][0]

    with pytest.raises(InvalidInput) as caught:
        check_point(events, {"signals": [good, "zp.root"], "cross_section_fb": 1})

    assert caught.value.message == (
        "$.signals[1]: give a file, or sha256:<digest> of a file uploaded earlier"
    )


def test_a_point_without_a_cross_section_is_refused(events: Analysis) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_point(events, {}, {"signals": [b"x"]})

    assert caught.value.message == (
        "inputs: $: 'cross_section_fb' is a required property"
    )


def test_the_workflow_gets_files_preserved_files_point_and_parameters(
    events: Analysis, tmp_path: Path
) -> None:
    point = check_point(events, events.example_inputs, name="zprime_1500")
    run = request_submit(events, [point], enqueue_runs=False).runs.get()

    init = materialise(Batch([Claim(run, attempt=1)]), tmp_path / "inputs")

    assert init == {
        "signals": [str(tmp_path / "inputs" / "signals" / str(i)) for i in (0, 1)],
        "cross_section_fb": 0.04,
        "model_parameters": str(tmp_path / "inputs" / "model_parameters.json"),
        "background": str(tmp_path / "inputs" / "background"),
        "observed": str(tmp_path / "inputs" / "observed"),
        "point": "zprime_1500",
    }
    assert Path(init["signals"][1]).read_bytes() == SIGNALS[1].read_bytes()
    assert (
        Path(init["background"]).read_bytes()
        == (FOLDER / "data" / "background.root").read_bytes()
    )
    assert json.loads(Path(init["model_parameters"]).read_text()) == {"m_zprime": 1500}


@pytest.mark.django_db(transaction=True)
def test_the_api_refuses_a_patch_scan_for_an_event_level_analysis(
    events: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    response = as_alice.post(
        "/api/v1/requests/", {"analysis": EVENTS, "scan": "*"}, format="json"
    )

    assert error(response) == (
        400,
        "invalid",
        f"$.scan: '{EVENTS}' is not a public-likelihood analysis; give its inputs "
        "(signals, cross_section_fb, model_parameters) as inputs or points",
    )


def test_the_api_shows_the_steps_images_and_preserved_files(
    events: Analysis, as_alice: APIClient
) -> None:
    workflow = as_alice.get(f"/api/v1/analyses/{EVENTS}/").json()["workflow"]

    assert workflow["stages"] == [
        "select",
        "reference",
        "merge",
        "patch",
        "fit",
        "summarise",
        "plot",
    ]
    assert workflow["preserved"] == events.current_workflow().preserved


@pytest.mark.django_db(transaction=True)
def test_the_api_takes_root_files_as_multipart_fields(
    events: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    with SIGNALS[0].open("rb") as first, SIGNALS[1].open("rb") as second:
        response = as_alice.post(
            "/api/v1/requests/",
            {
                "analysis": EVENTS,
                "inputs": json.dumps({"cross_section_fb": 0.04}),
                "signals": [first, second],
            },
            format="multipart",
        )

    assert response.status_code == 201, response.json()
    [run] = response.json()["runs"]
    assert run["point"] == "zprime_1500_a"  # named after the first file
    assert run["inputs"]["signals"] == events.example_inputs["signals"]
    assert len(queued) == 1


def test_the_api_refuses_a_file_under_a_name_the_analysis_does_not_take(
    events: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    with SIGNALS[0].open("rb") as first:
        response = as_alice.post(
            "/api/v1/requests/",
            {"analysis": EVENTS, "inputs": "{}", "sginals": first},
            format="multipart",
        )

    assert error(response) == (
        400,
        "invalid",
        f"$.sginals: not a file input of '{EVENTS}' (its file inputs: signals)",
    )
    assert queued == []
