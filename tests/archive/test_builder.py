"""Archives are written whole or not at all, and verify catches any tampering."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from recast.archive.builder import (
    ArchiveError,
    archive_verify,
    archive_write,
    point_outputs,
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("alpha")
    (source / "b.bin").write_bytes(b"\x00\x01")
    target = tmp_path / "archive"
    archive_write(target, {"files": source}, {"run.json": {"status": "succeeded"}})
    return target


def writable(path: Path) -> None:
    for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    for file in (p for p in path.rglob("*") if p.is_file()):
        file.chmod(0o644)


def test_a_fresh_archive_verifies(archive: Path) -> None:
    assert archive_verify(archive) == []


def test_archive_files_are_read_only(archive: Path) -> None:
    mode = (archive / "files" / "sub" / "a.txt").stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_a_changed_byte_is_named(archive: Path) -> None:
    writable(archive)
    (archive / "files" / "b.bin").write_bytes(b"\x00\x02")

    assert archive_verify(archive) == ["files/b.bin: content changed (sha256 differs)"]


def test_a_missing_file_is_named(archive: Path) -> None:
    writable(archive)
    (archive / "files" / "sub" / "a.txt").unlink()

    assert archive_verify(archive) == ["files/sub/a.txt: missing"]


def test_an_extra_file_is_named(archive: Path) -> None:
    writable(archive)
    (archive / "files" / "extra.txt").write_text("sneaky")

    assert archive_verify(archive) == ["files/extra.txt: not in the manifest"]


def test_a_file_swapped_for_a_symlink_is_named(archive: Path) -> None:
    writable(archive)
    target = archive / "files" / "b.bin"
    target.unlink()
    os.symlink("/etc/hostname", target)

    assert archive_verify(archive) == ["files/b.bin: not a regular file"]


def test_a_missing_manifest_is_named(archive: Path) -> None:
    writable(archive)
    (archive / "manifest.json").unlink()

    assert archive_verify(archive) == ["manifest.json: missing"]


def test_an_archive_is_never_written_twice(archive: Path) -> None:
    with pytest.raises(ArchiveError, match="exists already; archives are written once"):
        archive_write(archive, {}, {"x.json": {}})


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "archive"

    with pytest.raises(FileNotFoundError):
        archive_write(target, {"missing": tmp_path / "no-such-file"}, {})

    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_point_of_a_batch_keeps_its_own_outputs_and_its_slice_of_the_rest(
    tmp_path: Path,
) -> None:
    stage = tmp_path / "fit"
    for point in ("a_1", "b_2"):
        (stage / "points" / point).mkdir(parents=True)
        (stage / "points" / point / "fit.json").write_text("{}")
        (stage / f"{point}.png").write_bytes(b"png")
    (stage / "fits.json").write_text(
        json.dumps({"backend": "jax", "fits": [{"point": "a_1"}, {"point": "b_2"}]})
    )
    (stage / "summary.txt").write_text("the batch's own")
    (stage / ".tmp").mkdir()
    (stage / ".tmp" / "scratch").write_text("")

    files, documents = point_outputs(stage, "outputs/fit", "a_1", {"a_1", "b_2"})

    assert sorted(files) == [
        "outputs/fit/a_1.png",
        "outputs/fit/points/a_1/fit.json",
        "outputs/fit/summary.txt",
    ]
    assert documents == {
        "outputs/fit/fits.json": {"backend": "jax", "fits": [{"point": "a_1"}]}
    }
