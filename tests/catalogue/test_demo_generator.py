"""The demo likelihood is made by the project, deterministically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO, WORKFLOWS


def test_the_generator_rewrites_the_committed_files_byte_for_byte(
    tmp_path: Path,
) -> None:
    folder = WORKFLOWS / DEMO
    subprocess.run(
        [sys.executable, str(folder / "generate.py"), "--output-dir", str(tmp_path)],
        check=True,
    )

    for relative in (
        "data/BkgOnly.json",
        "data/patchset.json",
        "example/stop_650_100.json",
    ):
        assert (tmp_path / relative).read_bytes() == (folder / relative).read_bytes(), (
            relative
        )
