"""A point's inputs are checked before anything is stored."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from recast.catalogue.models import Analysis
from recast.core.errors import InvalidInput
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request
from recast.storage.models import Blob
from tests.conftest import DEMO, WORKFLOWS

EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"


def example() -> Any:
    return json.loads(EXAMPLE.read_text())


def upload(document: Any) -> dict[str, bytes]:
    return {"signal": json.dumps(document).encode()}


def rejected(
    analysis: Analysis, inputs: object, uploads: dict[str, bytes] | None = None
) -> str:
    with pytest.raises(InvalidInput) as caught:
        check_point(analysis, inputs, uploads)
    return caught.value.message


def test_a_patch_name_becomes_a_signal_with_model_parameters(demo: Analysis) -> None:
    point = check_point(demo, {"patch": "stop_550_100"})

    assert point.point == "stop_550_100"
    assert point.model_parameters == {"m_stop": 550, "m_lsp": 100}
    assert point.inputs["signal"].startswith("sha256:")
    assert json.loads(point.new_files["signal"])["metadata"]["name"] == "stop_550_100"


def test_an_uploaded_signal_is_named_by_its_metadata(demo: Analysis) -> None:
    signal = json.dumps(
        {"metadata": {"name": "my model", "values": [1]}, "patch": example()["patch"]}
    ).encode()
    stored = Blob.objects.count()

    point = check_point(demo, {}, {"signal": signal})

    assert point.point == "my_model"
    assert Blob.objects.count() == stored  # checking stores nothing


def test_an_unknown_patch_is_refused_with_examples(demo: Analysis) -> None:
    assert rejected(demo, {"patch": "stop_999_0"}) == (
        "$.patch: no patch named 'stop_999_0' in the patchset of 'demo-stop-1l' "
        "(for example: stop_450_0, stop_450_100, stop_450_200)"
    )


def test_an_unknown_field_is_refused(demo: Analysis) -> None:
    assert rejected(demo, {"patch": "stop_450_0", "mass": 3}) == (
        "inputs: $: Additional properties are not allowed ('mass' was unexpected)"
    )


def test_a_signal_and_a_patch_together_are_refused(demo: Analysis) -> None:
    message = rejected(demo, {"patch": "stop_450_0"}, {"signal": b"[]"})

    assert message.startswith("inputs: $: ")
    assert "is valid under each of" in message


def test_a_signal_that_is_not_json_is_refused(demo: Analysis) -> None:
    assert rejected(demo, {}, {"signal": b"{not json"}).startswith(
        "$.signal: not valid JSON ("
    )


def test_a_signal_of_the_wrong_shape_is_refused(demo: Analysis) -> None:
    assert rejected(demo, {}, {"signal": b'{"channels": []}'}) == (
        "$.signal: a signal must be a JSON Patch (a list of operations) "
        "or one patch of a pyhf patchset (an object with 'metadata' and 'patch')"
    )


def test_a_reference_to_an_unknown_upload_is_refused(demo: Analysis) -> None:
    assert (
        rejected(demo, {"signal": "sha256:" + "0" * 64})
        == f"$.signal: no uploaded file has sha256 {'0' * 64}"
    )


def test_inputs_that_are_not_an_object_are_refused(demo: Analysis) -> None:
    assert rejected(demo, ["patch"]) == "$: the inputs of a point must be a JSON object"
    assert not Request.objects.exists()


def test_a_signal_for_another_workspace_is_refused_at_submit(demo: Analysis) -> None:
    signal = example()
    signal["metadata"]["digests"] = {"sha256": "ab" * 32}

    assert rejected(demo, {}, upload(signal)) == (
        "$.signal: this patch was made for another workspace (its "
        "metadata.digests.sha256 is abababababab…, the background-only workspace "
        "of 'demo-stop-1l' is 1f340c8de870…)"
    )


def test_a_patch_that_does_not_apply_is_refused_at_submit(demo: Analysis) -> None:
    signal = example()
    signal["patch"][0]["path"] = "/channels/7/samples/-"

    assert rejected(demo, {}, upload(signal)).startswith(
        "$.signal: the patch does not apply to the background-only workspace of "
        "'demo-stop-1l' ("
    )


def test_a_patch_without_signal_is_refused_at_submit(demo: Analysis) -> None:
    signal = example()
    for operation in signal["patch"]:
        operation["value"]["modifiers"] = [
            m for m in operation["value"]["modifiers"] if m["name"] != "mu_SIG"
        ]

    assert rejected(demo, {}, upload(signal)) == (
        "$.signal: the patch adds no sample with the parameter of interest "
        "'mu_SIG'; a signal sample must carry a normfactor modifier of that name"
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_or_infinity_in_a_histogram_is_refused_at_submit(
    demo: Analysis, number: float
) -> None:
    signal = example()
    signal["patch"][0]["value"]["data"][1] = number

    assert rejected(demo, {}, upload(signal)) == (
        "$.signal: the patch holds NaN or infinity at /patch/0/value/data/1; every "
        "yield and uncertainty must be a finite number"
    )


def test_operations_that_are_not_json_patch_are_refused(demo: Analysis) -> None:
    assert rejected(demo, {}, upload([{"nothing": 1}])) == (
        "$.signal: the patch does not apply to the background-only workspace of "
        "'demo-stop-1l' (Operation does not contain 'op' member); was it made for "
        "another workspace?"
    )
