"""Credentials handed to a step while it runs, and kept out of what it leaves.

A step that needs private inputs gets each credential its request names as a
file of its own (mode 0600) in a private folder (mode 0700) made for this one
step, outside every run's workspace, in memory where the host has /dev/shm;
``RECAST_CREDENTIAL_<NAME>`` names the file, ``RECAST_CREDENTIALS_DIR`` the
folder. The folder is removed when the step ends, however it ends. The
values never enter the step's command, its recorded environment or the step
cache's key, and they are scrubbed from its log.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# A fresh 0700 folder from mkdtemp, in memory: never written to a disk.
MEMORY = Path("/dev/shm")  # noqa: S108
PREFIX = "RECAST_CREDENTIAL_"
FOLDER_VARIABLE = "RECAST_CREDENTIALS_DIR"
# Where a step's credentials folder appears inside a container, on every
# container backend (Docker's bind mount, Kubernetes' Secret volume).
CONTAINER_FOLDER = "/run/recast/credentials"
# What replaces a credential's value in a log.
REDACTED = "[credential {name} redacted]"


def variable(name: str) -> str:
    """The environment variable that names credential ``name``'s file."""
    return PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def usable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def private_parent(given: Path | None) -> str | None:
    """Where step folders are made: ``given`` (made if missing), else
    /dev/shm, else the system's temporary folder (None)."""
    if given is not None and given != MEMORY:
        given.mkdir(mode=0o700, parents=True, exist_ok=True)
        return str(given)
    return str(MEMORY) if usable(MEMORY) else None


@contextlib.contextmanager
def handed_over(
    values: Mapping[str, str], owner: int | None = None, parent: Path | None = None
) -> Iterator[Path | None]:
    """A fresh private folder (under ``parent`` if given) holding one file per
    credential (None when there are none), readable by the worker or by
    ``owner`` (a container's uid) alone, and removed on the way out, also on
    an error."""
    if not values:
        yield None
        return
    where = private_parent(parent)
    folder = Path(tempfile.mkdtemp(prefix="recast-credentials-", dir=where))
    try:
        for name, value in values.items():
            path = folder / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(value)
            if owner is not None:
                os.chown(path, owner, owner)
        if owner is not None:
            os.chown(folder, owner, owner)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def variables(values: Mapping[str, str], folder: Path | str) -> dict[str, str]:
    """The step's environment entries for its credentials in ``folder`` (the
    path the step sees, which a container mounts elsewhere)."""
    entries = {variable(name): f"{folder}/{name}" for name in values}
    return {FOLDER_VARIABLE: str(folder), **entries} if entries else {}


def record(values: Mapping[str, str]) -> dict[str, Any]:
    """What the step's record says: the names it was given, never a value."""
    return {"credentials": sorted(values)} if values else {}


def scrub_text(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        if value:
            text = text.replace(value, REDACTED.format(name=name))
    return text


def scrub_file(path: Path, values: Mapping[str, str]) -> None:
    """Rewrite ``path`` without any credential's value (a step may print one)."""
    if not values or not path.is_file():
        return
    raw = path.read_bytes()
    for name, value in values.items():
        if value:
            raw = raw.replace(value.encode(), REDACTED.format(name=name).encode())
    path.write_bytes(raw)
