"""The `recast` command line: exit codes and messages."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from recast.catalogue.models import Analysis
from recast.cli.main import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_run_needs_exactly_one_signal(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "demo-stop-1l"])

    assert result.exit_code == 2
    assert (
        "give exactly one of --signal FILE, --patch NAME, --input KEY=VALUE... or "
        "--example" in result.output
    )


def test_run_wants_key_equals_value_inputs(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "demo-stop-1l", "--input", "signal"])

    assert result.exit_code == 2
    assert "--input signal: write KEY=VALUE" in result.output


@pytest.mark.django_db(transaction=True)
def test_run_names_an_input_file_it_cannot_read(
    runner: CliRunner, events: Analysis
) -> None:
    result = runner.invoke(
        cli, ["run", events.slug, "--input", "signals=@no-such.root"]
    )

    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "error: $.signals: cannot read no-such.root (No such file or directory)"
    )


@pytest.mark.django_db(transaction=True)
def test_run_names_an_unknown_analysis(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["run", "no-such-analysis", "--example"])

    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "error: no analysis 'no-such-analysis' in the catalogue (see `recast "
        "catalogue ls`)"
    )


@pytest.mark.django_db(transaction=True)
def test_run_names_an_unknown_patch(runner: CliRunner, demo: Analysis) -> None:
    result = runner.invoke(cli, ["run", "demo-stop-1l", "--patch", "stop_1_1"])

    assert result.exit_code == 2
    assert (
        "error: $.patch: no patch named 'stop_1_1' in the patchset of 'demo-stop-1l'"
        in result.stderr
    )


@pytest.mark.django_db(transaction=True)
def test_catalogue_ls_prints_json(runner: CliRunner, demo: Analysis) -> None:
    result = runner.invoke(cli, ["catalogue", "ls", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "slug": "demo-stop-1l",
            "title": demo.title,
            "collaboration": "recast demo",
            "kind": "public-likelihood",
        }
    ]
