"""The event-level demo analysis' own code, in its step environment: the
generator rewrites the committed event files byte for byte, and the preserved
selection names what is wrong with a bad event file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from recast.catalogue import loader
from recast.engine import environments
from tests.conftest import EVENTS, WORKFLOWS, envs_dir

FOLDER = WORKFLOWS / EVENTS
FILES = (
    "data/background.root",
    "data/observed.root",
    "example/zprime_1500_a.root",
    "example/zprime_1500_b.root",
)

pytestmark = pytest.mark.slow  # builds the selection image's environment once


@pytest.fixture(scope="module")
def selection_env() -> Path:
    [image] = [
        i
        for i in loader.read_images(
            loader.read_yaml(FOLDER / "recast.yml", "recast.yml"),
            FOLDER,
            WORKFLOWS,
            "recast.yml",
        )
        if i["name"] == "recast/dilepton-selection"
    ]
    venv, _ = environments.ensure(envs_dir(), image)
    return venv


def select(
    venv: Path, signal: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(venv / "bin" / "recast-dilepton"),
            "select",
            "--input",
            str(signal),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_generator_rewrites_the_committed_event_files_byte_for_byte(
    selection_env: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [
            str(selection_env / "bin" / "python"),
            str(FOLDER / "generate.py"),
            "--output-dir",
            str(tmp_path),
        ],
        check=True,
    )

    for relative in FILES:
        assert (tmp_path / relative).read_bytes() == (FOLDER / relative).read_bytes(), (
            relative
        )


def test_the_event_files_stay_small() -> None:
    assert sum((FOLDER / relative).stat().st_size for relative in FILES) < 400_000


def test_a_file_that_is_not_root_is_refused_in_one_line(
    selection_env: Path, tmp_path: Path
) -> None:
    signal = tmp_path / "signal.root"
    signal.write_text('{"not": "root"}')

    done = select(selection_env, signal, tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith(
        "recast-dilepton select: signal.root: not a ROOT file ("
    )


def test_a_root_file_without_the_events_tree_names_the_trees_it_has(
    selection_env: Path, tmp_path: Path
) -> None:
    done = select(selection_env, FOLDER / "data" / "background.root", tmp_path)

    assert (done.returncode, done.stderr) == (
        2,
        "recast-dilepton select: background.root: no TTree 'events' "
        "(TTrees found: drellyan, ttbar)\n",
    )
