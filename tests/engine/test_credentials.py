"""The engine's side of credentials: private files while a step runs, the
variables naming them, and the values scrubbed from a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from recast.engine import credentials


def test_each_credential_is_a_private_file_in_a_private_folder_removed_after(
    tmp_path: Path,
) -> None:
    parent = tmp_path / "step-secrets"

    with credentials.handed_over(
        {"eos-token": "tok-1", "s3": "k-2"}, None, parent
    ) as folder:
        assert folder is not None and folder.parent == parent
        modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
        assert (folder.stat().st_mode & 0o777, modes) == (
            0o700,
            {"eos-token": 0o600, "s3": 0o600},
        )
        assert (folder / "eos-token").read_text() == "tok-1"

    assert not folder.exists()


def test_the_folder_is_removed_when_the_step_raises(tmp_path: Path) -> None:
    given = credentials.handed_over({"a": "tok-1"}, None, tmp_path)
    with pytest.raises(RuntimeError), given as folder:
        raise RuntimeError("the engine failed")

    assert folder is not None and not folder.exists()


def test_no_credentials_make_no_folder_and_no_variables() -> None:
    with credentials.handed_over({}) as folder:
        assert folder is None
    assert credentials.variables({}, "/x") == {}
    assert credentials.record({}) == {}


def test_variables_name_each_file_as_the_step_sees_it() -> None:
    found = credentials.variables({"eos-token": "v", "s3.keys": "w"}, "/run/c")

    assert found == {
        "RECAST_CREDENTIALS_DIR": "/run/c",
        "RECAST_CREDENTIAL_EOS_TOKEN": "/run/c/eos-token",
        "RECAST_CREDENTIAL_S3_KEYS": "/run/c/s3.keys",
    }


def test_every_occurrence_of_a_value_is_scrubbed_from_a_log(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes(b"token tok-123456 and again tok-123456\n\xff binary stays\n")

    credentials.scrub_file(log, {"eos": "tok-123456"})

    assert log.read_bytes() == (
        b"token [credential eos redacted] and again [credential eos redacted]\n"
        b"\xff binary stays\n"
    )
