"""`recast lint`: precise findings on good and deliberately broken specs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from recast.catalogue.lint import Finding, lint
from recast.cli.main import cli
from tests.conftest import DEMO, EVENTS

ATLAS_STYLE = Path(__file__).with_name("specs") / "atlas-style"


def errors(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.file, f.path, f.message) for f in findings if f.severity == "error"]


def test_the_demo_analysis_has_no_error(workflows_copy: Path) -> None:
    findings = lint(workflows_copy / DEMO)

    assert errors(findings) == []
    assert {f.severity for f in findings} == {"info"}  # pinned by tag, not digest


def test_the_event_level_analysis_has_no_error(workflows_copy: Path) -> None:
    findings = lint(workflows_copy / EVENTS)

    assert errors(findings) == []
    assert {(f.file, f.severity) for f in findings} == {
        ("steps.yml", "info"),
        ("../public-likelihood/steps.yml", "info"),
    }


def test_a_broken_step_of_the_event_level_analysis_is_found_in_its_file(
    workflows_copy: Path,
) -> None:
    steps = workflows_copy / EVENTS / "steps.yml"
    text = steps.read_text()
    head, tail = text.split("reference:\n", 1)
    head = head.replace("imagetag: 1.0.0", "imagetag: latest\n    resources: [CVMFS]")
    steps.write_text(head + "reference:\n" + tail)

    assert errors(lint(workflows_copy / EVENTS)) == [
        (
            "steps.yml",
            "$.select.environment.imagetag",
            "image 'recast/dilepton-selection' is not pinned (tag 'latest')",
        ),
        (
            "steps.yml",
            "$.select.environment.resources[0]",
            "the step asks for a host mount (CVMFS)",
        ),
    ]


def test_an_init_parameter_that_is_neither_input_nor_preserved_is_an_error(
    workflows_copy: Path,
) -> None:
    entry = workflows_copy / EVENTS / "recast.yml"
    document = yaml.safe_load(entry.read_text())
    del document["preserved"]["observed"]
    entry.write_text(yaml.safe_dump(document))

    assert errors(lint(workflows_copy / EVENTS)) == [
        (
            "workflow.yml",
            "$.stages[1].scheduler.parameters[1]",
            "parameter 'observed' reads init 'observed', "
            "which the input schema does not declare",
        ),
    ]


def test_a_missing_preserved_file_is_an_error(workflows_copy: Path) -> None:
    (workflows_copy / EVENTS / "data" / "observed.root").unlink()

    assert errors(lint(workflows_copy / EVENTS)) == [
        (
            "recast.yml",
            "$.preserved.observed",
            "'data/observed.root' does not exist",
        ),
    ]


def test_a_multi_file_spec_with_scatter_and_a_subworkflow_is_read_whole() -> None:
    findings = lint(ATLAS_STYLE / "workflow.yml")

    # Each finding names the file that holds the step ($ref), and the path in it.
    assert [(f.file, f.path, f.severity, f.message) for f in findings] == [
        (
            "steps/fit.yml",
            "$.environment.imagetag",
            "error",
            "image 'example/fit' is not pinned (tag 'latest')",
        ),
        (
            "steps/fit.yml",
            "$.environment.resources[0]",
            "error",
            "the step asks for a host mount (CVMFS)",
        ),
        (
            "steps/merge.yml",
            "$.environment.imagetag",
            "info",
            "image 'example/selection' is pinned by tag 'v1.2' only",
        ),
        (
            "steps/selection.yml",
            "$.publisher",
            "warning",
            "stage 'selection' publishes 'cutflow', which no stage reads",
        ),
    ]


def test_a_parameter_read_from_init_must_be_declared_in_the_input_schema(
    workflows_copy: Path,
) -> None:
    steps = workflows_copy / "public-likelihood" / "workflow.yml"
    steps.write_text(
        steps.read_text().replace(
            "{step: init, output: signals}", "{step: init, output: signalz}"
        )
    )
    entry = workflows_copy / DEMO / "recast.yml"
    entry.write_text(
        entry.read_text().replace("parameter: signals", "parameter: signalz")
    )

    assert errors(lint(workflows_copy / DEMO)) == [
        (
            "workflow.yml",
            "$.stages[0].scheduler.parameters[1]",
            "parameter 'signals' reads init 'signalz', "
            "which the input schema does not declare",
        ),
    ]


def test_an_invalid_recast_yml_is_reported_field_by_field(workflows_copy: Path) -> None:
    entry = workflows_copy / DEMO / "recast.yml"
    document = yaml.safe_load(entry.read_text())
    document["kind"] = "magic"
    del document["title"]
    entry.write_text(yaml.safe_dump(document))

    assert errors(lint(workflows_copy / DEMO)) == [
        ("recast.yml", "$", "'title' is a required property"),
        (
            "recast.yml",
            "$.kind",
            "'magic' is not one of ['public-likelihood', 'event-level', 'workflow']",
        ),
    ]


def test_a_broken_reference_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ATLAS_STYLE, tmp_path / "spec")
    (tmp_path / "spec" / "steps" / "merge.yml").unlink()

    [finding] = lint(tmp_path / "spec" / "workflow.yml")

    assert (finding.severity, finding.path) == ("error", "$")
    assert finding.message.startswith("cannot load the spec: ")


def test_an_unknown_environment_type_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(ATLAS_STYLE, tmp_path / "spec")
    merge = tmp_path / "spec" / "steps" / "merge.yml"
    text = merge.read_text().split("environment:")[0]
    merge.write_text(text + "environment:\n  environment_type: localproc-env\n")

    assert (
        "steps/merge.yml",
        "$.environment.environment_type",
        "environment type 'localproc-env' cannot run on recast's backends",
    ) in errors(lint(tmp_path / "spec"))


@pytest.mark.parametrize(("target", "code"), [(ATLAS_STYLE / "workflow.yml", 1)])
def test_the_cli_exits_1_on_errors_and_prints_json(target: Path, code: int) -> None:
    result = CliRunner().invoke(cli, ["lint", str(target), "--json"])

    assert result.exit_code == code
    assert {f["severity"] for f in json.loads(result.stdout)} == {
        "warning",
        "info",
        "error",
    }


def test_a_schema_error_names_the_closest_cause(tmp_path: Path) -> None:
    shutil.copytree(ATLAS_STYLE, tmp_path / "spec")
    merge = tmp_path / "spec" / "steps" / "merge.yml"
    merge.write_text(
        merge.read_text().replace(
            "publisher_type: interpolated-pub", "publisher_type: telepathy"
        )
    )

    [finding] = lint(tmp_path / "spec")

    assert (finding.file, finding.path) == (
        "steps/merge.yml",
        "$.publisher.publisher_type",
    )
    assert finding.message == (
        "'telepathy' is not one of ['constant-pub', 'fromglob-pub', "
        "'frompar-pub', 'fromparjq-pub', 'fromyaml-pub', 'interpolated-pub', "
        "'manual-instructions-pub']"
    )
