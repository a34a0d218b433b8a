"""Write and verify run archives. No Django here: the caller says what goes in.

An archive is a folder with ``manifest.json`` listing every other file with its
size and sha256. It is assembled under a temporary name next to its target and
renamed into place only when complete, so a failure (a full disk, a killed
worker) never leaves a half-written archive, and its files are made read-only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "recast-archive/v1"


class ArchiveError(Exception):
    pass


class DiskFull(ArchiveError):
    """The device that holds the archive filled up while it was written."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def manifest_of(folder: Path) -> dict[str, Any]:
    entries = {
        path.relative_to(folder).as_posix(): {
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        for path in files_under(folder)
        if path.relative_to(folder).as_posix() != MANIFEST
    }
    return {"format": FORMAT, "files": entries}


def owners(relative: Path, points: Collection[str]) -> set[str]:
    """The points a file of a batch's output belongs to: those that name one
    of its folders or the file itself (with or without its extension)."""
    names = {part for part in relative.parts}
    names |= {Path(part).stem for part in relative.parts}
    return names & set(points)


def sliced_document(path: Path, point: str) -> dict[str, Any] | None:
    """A combined JSON document cut down to ``point``: every list of entries
    that name their point keeps only this point's. None when ``path`` is not
    such a document (then it is the batch's and goes in whole)."""
    if path.suffix != ".json":
        return None
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    sliced, cut = dict(document), False
    for key, value in document.items():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "point" in v for v in value)
        ):
            sliced[key] = [v for v in value if v["point"] == point]
            cut = True
    return sliced if cut else None


def point_outputs(
    stage: Path, prefix: str, point: str, points: Collection[str]
) -> tuple[dict[str, Path], dict[str, Any]]:
    """What of a batch's stage folder goes into ``point``'s archive, under
    ``prefix``: the files named after the point, the combined documents cut
    down to it, and files of no point in particular; never another point's.
    Returns the files to copy and the cut-down documents to write."""
    files: dict[str, Path] = {}
    documents: dict[str, Any] = {}
    for path in files_under(stage):
        relative = path.relative_to(stage)
        if relative.parts[0] in (".tmp", "__pycache__"):
            continue
        belongs = owners(relative, points)
        target = f"{prefix}/{relative.as_posix()}"
        if belongs:
            if point in belongs:
                files[target] = path
            continue
        sliced = sliced_document(path, point)
        if sliced is None:
            files[target] = path
        else:
            documents[target] = sliced
    return files, documents


def link_or_copy(source: str, target: str) -> None:
    """Share a read-only file by a hard link (a scan holds its points' archives
    without a second copy); copy where a link cannot be made."""
    # By the mode bits: root may write to anything, so os.access cannot tell.
    if not os.stat(source).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    try:
        shutil.copy2(source, target)
    except OSError as exc:
        # Not an OSError: shutil.copytree would note it and copy on regardless.
        if exc.errno == errno.ENOSPC:
            raise DiskFull(target) from exc
        raise


def copy_into(
    staging: Path, files: Mapping[str, Path], documents: Mapping[str, Any]
) -> None:
    for relative, source in files.items():
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                symlinks=False,
                ignore=shutil.ignore_patterns(".tmp", "__pycache__"),
                copy_function=link_or_copy,
            )
        else:
            shutil.copyfile(source, target)
    for relative, document in documents.items():
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            json.dumps(document, indent=1, sort_keys=True, default=str) + "\n"
        )


def freeze(folder: Path) -> None:
    for path in [
        *files_under(folder),
        *sorted(p for p in folder.rglob("*") if p.is_dir()),
    ]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    folder.chmod(folder.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def archive_write(
    target: Path,
    files: Mapping[str, Path],
    documents: Mapping[str, Any],
    describe: Callable[[Path], None] | None = None,
) -> str:
    """Write the archive at ``target`` (which must not exist); return the
    sha256 of its manifest, which identifies the whole archive. ``describe``
    may add files (metadata about the others) before the manifest is made."""
    if target.exists():
        raise ArchiveError(f"{target} exists already; archives are written once")
    staging = target.with_name(f".{target.name}.incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        copy_into(staging, files, documents)
        if describe is not None:
            describe(staging)
        manifest = manifest_of(staging)
        (staging / MANIFEST).write_text(
            json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        )
        freeze(staging)
        os.rename(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True, onerror=_force_remove)
        if isinstance(exc, DiskFull) or (
            isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        ):
            raise DiskFull(
                f"no space left on the device holding {target.parent}"
            ) from exc
        raise
    return sha256_file(target / MANIFEST)


def _force_remove(function: Any, path: str, _: Any) -> None:
    os.chmod(os.path.dirname(path), 0o700)
    function(path)


def archive_verify(folder: Path) -> list[str]:
    """Every problem found: a changed, missing or extra file. Empty means intact."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return [f"{MANIFEST}: missing"]
    try:
        listed = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return [f"{MANIFEST}: not a recast manifest"]

    problems = []
    present = {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()
    } - {MANIFEST}
    for relative in sorted(set(listed) - present):
        problems.append(f"{relative}: missing")
    for relative in sorted(present - set(listed)):
        problems.append(f"{relative}: not in the manifest")
    for relative in sorted(present & set(listed)):
        path = folder / relative
        if path.is_symlink() or not path.is_file():
            problems.append(f"{relative}: not a regular file")
        elif sha256_file(path) != listed[relative]["sha256"]:
            problems.append(f"{relative}: content changed (sha256 differs)")
    return problems + crate_problems(folder) + nested_crate_problems(folder)


def nested_crate_problems(folder: Path) -> list[str]:
    """The crates of the point archives a request's archive holds."""
    problems = []
    for metadata in sorted(folder.glob("points/*/ro-crate-metadata.json")):
        prefix = metadata.parent.relative_to(folder).as_posix()
        problems += [
            f"{prefix}/{problem}" for problem in crate_problems(metadata.parent)
        ]
    return problems


def crate_problems(folder: Path) -> list[str]:
    """The RO-Crate's own record of each file must agree with the file, so a
    manifest rewritten after tampering is still caught."""
    metadata = folder / "ro-crate-metadata.json"
    if not metadata.is_file():
        return []
    try:
        graph = json.loads(metadata.read_text())["@graph"]
    except (ValueError, KeyError, TypeError):
        return ["ro-crate-metadata.json: not RO-Crate JSON-LD (no @graph)"]
    problems = []
    for entity in graph:
        recorded = entity.get("sha256") if isinstance(entity, dict) else None
        path = folder / str(entity.get("@id", "")) if recorded else None
        if path is None or not entity["@id"] or entity["@id"].startswith("#"):
            continue
        if not path.is_file():
            problems.append(f"{entity['@id']}: listed in the RO-Crate but missing")
        elif sha256_file(path) != recorded:
            problems.append(f"{entity['@id']}: differs from its sha256 in the RO-Crate")
    return problems
