"""A downloaded archive is unpacked only when every member is a plain file or
folder inside one top-level folder; anything else is refused, naming the
member, before a byte is written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from recast.archive.unpack import UnsafeArchive, unpack

RECAST = str(Path(sys.executable).with_name("recast"))


def tarball(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, content in members:
            info.size = len(content) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


GOOD = (entry("run/manifest.json"), b"{}")
BAD = {
    "a parent path": (entry("run/../../evil"), "leaves the archive's folder ('..')"),
    "an absolute path": (entry("/etc/evil"), "is an absolute path"),
    "a symlink": (
        entry("run/key", tarfile.SYMTYPE, "/root/.ssh/id_rsa"),
        "is a link (an archive holds only files and folders)",
    ),
    "a hard link": (
        entry("run/copy", tarfile.LNKTYPE, "run/manifest.json"),
        "is a link (an archive holds only files and folders)",
    ),
    "a device": (entry("run/disk", tarfile.BLKTYPE), "is a device file or a FIFO"),
    "a FIFO": (entry("run/pipe", tarfile.FIFOTYPE), "is a device file or a FIFO"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_unsafe_member_is_refused_and_nothing_is_written(
    tmp_path: Path, case: str
) -> None:
    member, problem = BAD[case]
    archive = tarball(tmp_path / "a.tar.gz", GOOD, (member, b"x"))
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(UnsafeArchive) as caught:
        unpack(archive, target)

    assert str(caught.value) == f"a.tar.gz: member '{member.name}' {problem}"
    assert list(target.iterdir()) == []


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(
        archive, "w:gz", encoding="latin-1", format=tarfile.GNU_FORMAT
    ) as tar:
        info = tarfile.TarInfo("run/caf\xe9")
        tar.addfile(info, io.BytesIO(b""))

    with pytest.raises(UnsafeArchive) as caught:
        unpack(archive, tmp_path)

    assert str(caught.value) == (
        "a.tar.gz: member 'run/caf\\udce9' has a name that is not UTF-8"
    )


def test_two_top_level_folders_are_refused(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "a.tar.gz", GOOD, (entry("other/x"), b""))

    with pytest.raises(UnsafeArchive, match=r"expected one top-level folder, found 2"):
        unpack(archive, tmp_path / "out")


def test_a_file_that_is_not_a_tarball_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "a.tar.gz"
    fake.write_text("hello")

    with pytest.raises(UnsafeArchive, match=r"a\.tar\.gz: not a readable tar archive"):
        unpack(fake, tmp_path / "out")


def test_a_safe_archive_unpacks_to_its_folder(tmp_path: Path) -> None:
    archive = tarball(tmp_path / "a.tar.gz", GOOD)

    folder = unpack(archive, tmp_path / "out")

    assert folder == tmp_path / "out" / "run"
    assert json.loads((folder / "manifest.json").read_text()) == {}


def test_the_cli_verifies_a_tarball_and_refuses_an_unsafe_one(tmp_path: Path) -> None:
    unsafe = tarball(tmp_path / "bad.tar.gz", GOOD, (BAD["a symlink"][0], b""))
    incomplete = tarball(tmp_path / "run.tar.gz", GOOD)

    refused = subprocess.run(
        [RECAST, "archive", "verify", str(unsafe)], capture_output=True, text=True
    )
    checked = subprocess.run(
        [RECAST, "archive", "verify", str(incomplete)], capture_output=True, text=True
    )

    assert refused.returncode == 2
    assert "error: bad.tar.gz: member 'run/key' is a link" in refused.stderr
    assert checked.returncode == 1  # unpacked, then found wanting
    assert f"{incomplete}: " in checked.stderr
