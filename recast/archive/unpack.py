"""Unpack a downloaded archive (.tar.gz) safely, for verify and rerun.

An archive from elsewhere is untrusted: every member is checked before
anything is written, and only plain files and folders inside one top-level
folder are accepted. Nothing is extracted from an archive with a bad member.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath


class UnsafeArchive(Exception):
    pass


def member_problem(member: tarfile.TarInfo) -> str:
    """Why ``member`` may not be extracted, or "" when it may."""
    try:
        member.name.encode("utf-8")
    except UnicodeEncodeError:
        return "has a name that is not UTF-8"
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "leaves the archive's folder ('..')"
    if member.issym() or member.islnk():
        return "is a link (an archive holds only files and folders)"
    if member.isdev():
        return "is a device file or a FIFO"
    if not (member.isfile() or member.isdir()):
        return "is not a file or a folder"
    return ""


def unpack(tarball: Path, target: Path) -> Path:
    """Extract ``tarball`` under ``target``; return its one top-level folder.

    Raises UnsafeArchive naming the file and the member at fault.
    """
    try:
        tar = tarfile.open(tarball, "r:*")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, OSError) as exc:
        raise UnsafeArchive(
            f"{tarball.name}: not a readable tar archive ({exc})"
        ) from None

    with tar:
        members = tar.getmembers()
        for member in members:
            problem = member_problem(member)
            if problem:
                name = member.name.encode("utf-8", "backslashreplace").decode()
                raise UnsafeArchive(f"{tarball.name}: member '{name}' {problem}")
        tops = {PurePosixPath(m.name).parts[0] for m in members if m.name != "."}
        if len(tops) != 1:
            raise UnsafeArchive(
                f"{tarball.name}: expected one top-level folder, found {len(tops)}"
            )
        # The "data" filter refuses what the checks above refuse, once more.
        tar.extractall(target, filter="data")
    return target / tops.pop()
