"""Loading preserved analyses: good entries load, bad ones are refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recast.catalogue.models import Analysis, WorkflowVersion
from recast.catalogue.services import catalogue_load
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.services import request_submit
from tests.conftest import DEMO, EVENTS


def edit_entry(workflows: Path, change: dict) -> None:  # type: ignore[type-arg]
    path = workflows / DEMO / "recast.yml"
    document = yaml.safe_load(path.read_text())
    document.update(change)
    path.write_text(yaml.safe_dump(document))


def only_error(workflows: Path) -> str:
    [outcome] = catalogue_load(workflows, [DEMO])
    assert outcome.error is not None
    return outcome.error


@pytest.mark.django_db
def test_it_loads_the_demo_analysis_with_its_likelihood_and_example(
    workflows_copy: Path,
) -> None:
    [outcome] = catalogue_load(workflows_copy, [DEMO])

    analysis = Analysis.objects.get(slug=DEMO)
    assert (outcome.error, outcome.version, outcome.created) == (None, 1, True)
    assert analysis.kind == "public-likelihood"
    assert analysis.bkgonly_sha256 and analysis.patchset_sha256
    assert analysis.example_inputs["signal"].startswith("sha256:")
    assert analysis.reference_result["point"] == "stop_650_100"
    assert [s["name"] for s in analysis.current_workflow().spec["stages"]] == [
        "patch",
        "fit",
        "summarise",
        "plot",
    ]


@pytest.mark.django_db
def test_loading_twice_adds_no_version(workflows_copy: Path) -> None:
    catalogue_load(workflows_copy, [DEMO])
    [outcome] = catalogue_load(workflows_copy, [DEMO])

    assert (outcome.version, outcome.created) == (1, False)
    assert WorkflowVersion.objects.count() == 1


@pytest.mark.django_db
def test_a_changed_spec_adds_a_version_and_keeps_the_old_one(
    workflows_copy: Path,
) -> None:
    catalogue_load(workflows_copy, [DEMO])
    steps = workflows_copy / "public-likelihood" / "steps.yml"
    steps.write_text(
        steps.read_text().replace(
            "recast-pyhf fit --patched", "recast-pyhf fit --backend numpy --patched"
        )
    )

    [outcome] = catalogue_load(workflows_copy, [DEMO])

    versions = list(WorkflowVersion.objects.order_by("number"))
    assert (outcome.version, outcome.created) == (2, True)
    assert [v.is_current for v in versions] == [False, True]
    assert versions[0].digest != versions[1].digest


@pytest.mark.django_db
def test_a_missing_field_is_named_with_its_path(workflows_copy: Path) -> None:
    path = workflows_copy / DEMO / "recast.yml"
    document = yaml.safe_load(path.read_text())
    del document["title"]
    path.write_text(yaml.safe_dump(document))

    assert (
        only_error(workflows_copy)
        == "workflows/demo-stop-1l/recast.yml: $: 'title' is a required property"
    )
    assert not Analysis.objects.exists()


@pytest.mark.django_db
def test_a_wrong_type_is_named_with_its_path(workflows_copy: Path) -> None:
    edit_entry(workflows_copy, {"references": {"inspire": "one two three"}})

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.references.inspire: 'one two three' "
        "is not of type 'integer'"
    )


@pytest.mark.django_db
def test_an_unknown_field_is_refused(workflows_copy: Path) -> None:
    edit_entry(workflows_copy, {"colaboration": "typo"})

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $: Additional properties are not "
        "allowed ('colaboration' was unexpected)"
    )


@pytest.mark.django_db
def test_malformed_yaml_is_refused_with_its_line(workflows_copy: Path) -> None:
    (workflows_copy / DEMO / "recast.yml").write_text("title: [unclosed\nkind: x\n")

    assert (
        only_error(workflows_copy)
        == "workflows/demo-stop-1l/recast.yml: not valid YAML at line 2, column 5"
    )


@pytest.mark.django_db
def test_a_path_leaving_the_workflows_folder_is_refused(workflows_copy: Path) -> None:
    edit_entry(workflows_copy, {"likelihood": {"bkgonly": "../../../etc/passwd"}})

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.likelihood.bkgonly: "
        "'../../../etc/passwd' points outside the workflows folder"
    )


@pytest.mark.django_db
def test_a_missing_file_is_named(workflows_copy: Path) -> None:
    (workflows_copy / DEMO / "reference.json").unlink()

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.reference.result: 'reference.json' "
        "does not exist"
    )


@pytest.mark.django_db
def test_an_invalid_yadage_workflow_is_refused(workflows_copy: Path) -> None:
    spec = workflows_copy / "public-likelihood" / "workflow.yml"
    spec.write_text(
        spec.read_text().replace(
            "scheduler_type: singlestep-stage", "scheduler_type: nostep-stage", 1
        )
    )

    error = only_error(workflows_copy)

    assert error.startswith(
        "workflows/public-likelihood/workflow.yml: not a valid yadage workflow: "
    )
    assert not Analysis.objects.exists()


@pytest.mark.django_db
def test_a_step_with_an_undeclared_image_is_refused(workflows_copy: Path) -> None:
    steps = workflows_copy / "public-likelihood" / "steps.yml"
    steps.write_text(
        steps.read_text().replace("image: recast/pyhf", "image: someone/else", 1)
    )

    assert only_error(workflows_copy) == (
        "workflows/public-likelihood/workflow.yml: step $.stages[0] (patch): "
        "environment.image "
        "'someone/else' is not declared in recast.yml images"
    )


@pytest.mark.django_db
def test_an_example_that_breaks_the_input_schema_is_refused(
    workflows_copy: Path,
) -> None:
    edit_entry(
        workflows_copy,
        {
            "inputs": {
                "schema": "../public-likelihood/inputs.schema.json",
                "example": {"mass": 3},
            }
        },
    )

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.inputs.example: Additional "
        "properties are not allowed ('mass' was unexpected) (and 1 more)"
    )


@pytest.mark.django_db
def test_a_bad_entry_does_not_stop_the_good_ones(workflows_copy: Path) -> None:
    broken = workflows_copy / "broken-one"
    broken.mkdir()
    (broken / "recast.yml").write_text("schema: recast/analysis/v1\n")

    outcomes = {o.slug: o for o in catalogue_load(workflows_copy)}

    assert outcomes[DEMO].error is None and outcomes[EVENTS].error is None
    assert outcomes["broken-one"].error == (
        "workflows/broken-one/recast.yml: $: 'title' is a required property (and 9 "
        "more)"
    )
    assert list(Analysis.objects.values_list("slug", flat=True)) == [EVENTS, DEMO]


@pytest.mark.django_db
def test_a_request_keeps_its_workflow_version(workflows_copy: Path) -> None:
    catalogue_load(workflows_copy, [DEMO])
    analysis = Analysis.objects.get(slug=DEMO)
    request = request_submit(
        analysis, [check_point(analysis, {"patch": "stop_450_0"})], enqueue_runs=False
    )
    steps = workflows_copy / "public-likelihood" / "steps.yml"
    steps.write_text(
        steps.read_text().replace("--patched", "--backend numpy --patched")
    )

    catalogue_load(workflows_copy, [DEMO])

    request.refresh_from_db()
    assert request.workflow_version.number == 1
    assert analysis.current_workflow().number == 2


@pytest.mark.django_db
def test_a_workflow_that_takes_several_points_declares_its_batch(
    workflows_copy: Path,
) -> None:
    catalogue_load(workflows_copy, [DEMO])

    version = WorkflowVersion.objects.get(analysis__slug=DEMO)
    assert version.batch == {"parameter": "signals", "max_points": 64}


@pytest.mark.django_db
def test_a_batch_parameter_no_stage_reads_is_refused(workflows_copy: Path) -> None:
    edit_entry(
        workflows_copy,
        {
            "workflow": {
                "toplevel": "../public-likelihood",
                "file": "workflow.yml",
                "batch": {"parameter": "signal_files"},
            }
        },
    )

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.workflow.batch.parameter: no stage "
        "reads the init parameter 'signal_files'"
    )


@pytest.mark.django_db
def test_a_batch_of_zero_points_is_refused(workflows_copy: Path) -> None:
    edit_entry(
        workflows_copy,
        {
            "workflow": {
                "toplevel": "../public-likelihood",
                "file": "workflow.yml",
                "batch": {"parameter": "signals", "max_points": 0},
            }
        },
    )

    assert only_error(workflows_copy) == (
        "workflows/demo-stop-1l/recast.yml: $.workflow.batch.max_points: 0 is "
        "less than the minimum of 1"
    )
