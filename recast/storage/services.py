"""Store and read files by content."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings

from recast.core.errors import NotFound
from recast.storage.models import Blob


def blob_path(sha256: str) -> Path:
    return Path(settings.RECAST_UPLOAD_DIR) / sha256[:2] / sha256


def blob_store(content: bytes) -> Blob:
    """Store ``content`` once; storing the same bytes again returns the same blob.

    The file is written to a temporary name and renamed, so a reader never sees
    a half-written blob, and two writers of the same content cannot collide.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    target = blob_path(sha256)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)
    blob, _ = Blob.objects.get_or_create(sha256=sha256, defaults={"size": len(content)})
    return blob


def blob_read(sha256: str) -> bytes:
    path = blob_path(sha256)
    if not path.exists():
        raise NotFound(f"no stored file with sha256 {sha256}")
    return path.read_bytes()
