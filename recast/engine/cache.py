"""A content-addressed cache of step outputs, shared by every run (of any
request or user) that can see its folder.

A step's key is the sha256 of what decides its outputs: the executor and the
image's identity (its digest when the executor knows one, else the sha256 of
its recipe), the command, the environment variables and the parameters (with
the run's own folders written as placeholders, since every run has its own),
and the sha256 of every file the step can read: the files and folders its
parameters name (lists and globs included) and the contents of its readonly
folders. A step whose image the executor cannot identify is never cached.

An entry holds the step's folder, its log and a description (``entry.json``)
naming the run that first produced it. Entries are built under ``tmp/`` and
renamed into ``entries/``, so a crash never leaves half an entry. One lock
file per key (``fcntl.flock``) makes a second worker with the same key wait
for the first and then reuse its outputs; that assumes one host, or a shared
volume whose file system honours flock across its clients (NFSv4 does).
Entries are evicted least recently used first beyond the size limit.

The cache assumes steps write only into their own folder, as yadage steps do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from recast.engine.events import CancelCheck, StepJob, StepOutcome

logger = logging.getLogger(__name__)

KEY_VERSION = 1
ENTRY_FILE = "entry.json"
# packtivity's metadata folder and the executor's scratch folder (HOME, TMPDIR)
# are neither outputs nor inputs of a step.
NOT_OUTPUTS = frozenset({"_packtivity", ".tmp"})
GLOB_CHARACTERS = frozenset("*?[")
LOCK_POLL_SECONDS = 0.2
STALE_TMP_SECONDS = 24 * 3600


class Runs(Protocol):
    name: str

    def run(self, job: StepJob, cancelled: CancelCheck) -> StepOutcome: ...


@dataclass
class StepCache:
    """Where the cache lives and how big it may grow, as one run uses it.

    ``producer`` names the run that fills new entries (shown in the provenance
    of the runs that reuse them); ``roots`` are the run's own folders, written
    as placeholders in keys. The runner adds the workflow's work folder.
    """

    folder: Path
    max_bytes: int
    producer: str = ""
    roots: tuple[str, ...] = ()

    def for_workdir(self, workdir: Path) -> StepCache:
        return replace(self, roots=(str(workdir), *self.roots))

    @property
    def entries(self) -> Path:
        return self.folder / "entries"


@dataclass
class Entry:
    key: str
    path: Path
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def producer(self) -> str:
        return str(self.description.get("producer", ""))


def placeholders(roots: tuple[str, ...]) -> list[tuple[str, str]]:
    """(folder, placeholder) pairs, longest folder first, so that a folder
    inside another is replaced before its parent."""
    named = [(root.rstrip("/"), f"<root{index}>") for index, root in enumerate(roots)]
    return sorted(named, key=lambda pair: len(pair[0]), reverse=True)


def normalise(text: str, roots: tuple[str, ...]) -> str:
    for root, placeholder in placeholders(roots):
        # Whole folder names only: /work/run-1 is no prefix of /work/run-10.
        text = re.sub(re.escape(root) + r"(?![\w.-])", placeholder, text)
    return text


def normalised(value: Any, roots: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {str(k): normalised(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v, roots) for v in value]
    return normalise(value, roots) if isinstance(value, str) else value


def leaves(value: Any) -> Iterator[str]:
    """Every string in a parameter document (nested lists and objects)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, str):
        yield value


@lru_cache(maxsize=4096)
def file_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """Memoised on the file's size, time and inode: a scan's steps read the
    same large inputs again and again."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    stat = path.stat()
    return file_sha256(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def tree_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, in a stable order, leaving out NOT_OUTPUTS at
    its top."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.parts[0] in NOT_OUTPUTS or not path.is_file():
            continue
        yield path


def named_paths(text: str) -> list[Path]:
    """The existing files or folders a parameter names: an absolute path, or
    the matches of an absolute glob."""
    if not text.startswith("/"):
        return []
    if GLOB_CHARACTERS & set(text):
        return [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    path = Path(text)
    return [path] if path.exists() else []


def input_digests(
    parameters: Any, readonly: list[str], roots: tuple[str, ...]
) -> dict[str, str]:
    """sha256 of every file the step can read, by its normalised path."""
    digests: dict[str, str] = {}

    def add(path: Path) -> None:
        files = tree_files(path) if path.is_dir() else [path]
        for file in files:
            name = normalise(str(file), roots)
            if name not in digests:
                digests[name] = sha256_of(file)

    for text in leaves(parameters):
        for path in named_paths(text):
            add(path)
    for folder in readonly:
        if Path(folder).is_dir():
            add(Path(folder))
    return dict(sorted(digests.items()))


def image_identity(executor: Any, job: StepJob) -> str | None:
    """The executor's name for exactly this image (a digest, a recipe hash),
    or None when it cannot tell one, which keeps the step out of the cache."""
    identify = getattr(executor, "image_identity", None)
    if not callable(identify):
        return None
    identity = identify(job.image, job.tag)
    return str(identity) if identity else None


def step_key(
    cache: StepCache, executor: Any, job: StepJob, parameters: Any
) -> str | None:
    identity = image_identity(executor, job)
    if identity is None:
        return None
    document = {
        "version": KEY_VERSION,
        "executor": executor.name,
        "image": identity,
        "command": normalise(job.command, cache.roots),
        "env": job.env,
        "parameters": normalised(parameters, cache.roots),
        "inputs": input_digests(parameters, job.readonly, cache.roots),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextmanager
def key_lock(cache: StepCache, key: str, cancelled: CancelCheck) -> Iterator[bool]:
    """Hold the key's lock; yields False if the run was cancelled while it
    waited. Lock files are never deleted: removing one while another worker
    waits on it would let a third take a fresh lock on a new file."""
    locks = cache.folder / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{key}.lock", "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancelled():
                    yield False
                    return
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def entry_find(cache: StepCache, key: str) -> Entry | None:
    path = cache.entries / key
    try:
        description = json.loads((path / ENTRY_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return Entry(key, path, description)


def now() -> str:
    return datetime.now(UTC).isoformat()


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        # Another file system (EXDEV), or one that refuses hard links.
        shutil.copy2(source, target)


def entry_restore(entry: Entry, job: StepJob) -> bool:
    """Put the entry's files into the step's folder and its log at the step's
    log path; False (and the entry dropped) if a file no longer matches its
    checksum."""
    outputs = entry.path / "outputs"
    files: dict[str, list[Any]] = entry.description["files"]
    for relative, (size, digest) in files.items():
        source = outputs / relative
        if not source.is_file() or source.stat().st_size != size:
            return entry_corrupt(entry, relative)
        if sha256_of(source) != digest:
            return entry_corrupt(entry, relative)

    workdir = Path(job.workdir)
    try:
        for relative in entry.description.get("folders", []):
            (workdir / relative).mkdir(parents=True, exist_ok=True)
        for relative in files:
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            link_or_copy(outputs / relative, target)
    except OSError as exc:
        # Undo: the step runs instead, and must not write through a link
        # into the entry (root ignores the entry's read-only mode).
        for relative in files:
            with contextlib.suppress(OSError):
                (workdir / relative).unlink(missing_ok=True)
        logger.warning("cache entry %s could not be restored: %s", entry.key, exc)
        return False

    log = Path(job.log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    original = (entry.path / "step.log").read_bytes()
    header = f"recast: reused from cache entry {entry.key}"
    if entry.producer:
        header += f", first produced by run {entry.producer}"
    log.write_bytes(f"{header}\n".encode() + original)
    os.utime(entry.path / ENTRY_FILE)  # last use, for eviction
    return True


def entry_corrupt(entry: Entry, relative: str) -> bool:
    logger.warning(
        "cache entry %s: %s changed since it was stored; dropping the entry",
        entry.key,
        relative,
    )
    entry_remove(entry.path)
    return False


def entry_remove(path: Path) -> bool:
    """Move the entry aside first (one rename, atomic) so that no reader
    finds it half deleted; False if it was already gone."""
    trash = path.parent.parent / "tmp" / f"evicted-{path.name}-{uuid.uuid4().hex}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.rename(trash)
    except FileNotFoundError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def entry_store(
    cache: StepCache, key: str, job: StepJob, outcome: StepOutcome
) -> Entry | None:
    """Copy the step's folder and log into a new entry; None when the outputs
    alone exceed the size limit. Files are stored read-only: runs that reuse
    them get hard links, and a step must not change another run's outputs."""
    workdir = Path(job.workdir)
    staging = cache.folder / "tmp" / f"{key}-{uuid.uuid4().hex}"
    outputs = staging / "outputs"
    outputs.mkdir(parents=True)
    files: dict[str, list[Any]] = {}
    for path in tree_files(workdir):
        relative = path.relative_to(workdir).as_posix()
        target = outputs / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o444)
        files[relative] = [target.stat().st_size, sha256_of(target)]
    log = Path(job.log_path)
    (staging / "step.log").write_bytes(log.read_bytes() if log.exists() else b"")

    size = sum(size for size, _ in files.values())
    if size > cache.max_bytes:
        logger.info(
            "step %s: outputs of %d bytes exceed the cache limit", job.name, size
        )
        shutil.rmtree(staging, ignore_errors=True)
        return None
    description = {
        "key": key,
        "step": job.name,
        "image": f"{job.image}:{job.tag}",
        "command": normalise(job.command, cache.roots),
        "producer": cache.producer,
        "created_at": now(),
        "exit_code": outcome.exit_code,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "environment": outcome.environment,
        "files": files,
        "folders": sorted(
            p.relative_to(workdir).as_posix()
            for p in workdir.rglob("*")
            if p.is_dir() and p.relative_to(workdir).parts[0] not in NOT_OUTPUTS
        ),
        "bytes": size,
    }
    (staging / ENTRY_FILE).write_text(json.dumps(description, indent=1))
    cache.entries.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(cache.entries / key)
    except OSError as exc:
        # Only one writer holds the key's lock, but an entry may have come
        # back from a copy of the cache; either way the existing one stands.
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    return Entry(key, cache.entries / key, description)


def evict(cache: StepCache) -> list[str]:
    """Remove the least recently used entries until the cache fits its limit;
    an entry whose key is locked (being read or written) is skipped. Returns
    the evicted keys."""
    sweep_tmp(cache)
    listed = []
    for path in cache.entries.iterdir() if cache.entries.is_dir() else []:
        try:
            used = (path / ENTRY_FILE).stat().st_mtime
            size = int(json.loads((path / ENTRY_FILE).read_text())["bytes"])
        except (OSError, json.JSONDecodeError, KeyError):
            continue  # not an entry, or removed meanwhile
        listed.append((used, size, path))
    total = sum(size for _, size, _ in listed)
    evicted = []
    for _, size, path in sorted(listed):
        if total <= cache.max_bytes:
            break
        if evict_one(cache, path):
            total -= size
            evicted.append(path.name)
    if evicted:
        logger.info("step cache: evicted %d entries", len(evicted))
    return evicted


def evict_one(cache: StepCache, path: Path) -> bool:
    (cache.folder / "locks").mkdir(parents=True, exist_ok=True)
    with open(cache.folder / "locks" / f"{path.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return entry_remove(path)


def sweep_tmp(cache: StepCache) -> None:
    """Remove what crashed writers left under tmp/ (older than a day)."""
    tmp = cache.folder / "tmp"
    cutoff = time.time() - STALE_TMP_SECONDS
    for path in tmp.iterdir() if tmp.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):  # another sweeper was first
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


def reused_outcome(entry: Entry) -> StepOutcome:
    stamp = now()
    return StepOutcome(
        entry.description["exit_code"],
        stamp,
        stamp,
        environment=entry.description.get("environment", {}),
    )


def provenance(entry: Entry, hit: bool) -> dict[str, Any]:
    """What a step event says about the cache."""
    if not hit:
        return {"key": entry.key, "hit": False, "stored": True}
    return {
        "key": entry.key,
        "hit": True,
        "producer": entry.producer,
        "created_at": entry.description.get("created_at", ""),
    }


def run_step(
    cache: StepCache | None,
    executor: Runs,
    job: StepJob,
    parameters: Any,
    cancelled: CancelCheck,
) -> tuple[StepOutcome, dict[str, Any]]:
    """Run ``job`` on ``executor``, or reuse the outputs of an identical step.

    Returns the outcome and what the step's provenance says about the cache
    (empty when the step was not cached). A failed step is never stored.
    """
    # A step handed credentials reads private inputs its key cannot see
    # (hashing the value would not do: whoever shares a cache entry would
    # get outputs made from someone else's private data): never cached.
    key = step_key(cache, executor, job, parameters) if cache else None
    if job.credentials:
        key = None
    if cache is None or key is None:
        return executor.run(job, cancelled), {}

    with key_lock(cache, key, cancelled) as held:
        if not held:
            return StepOutcome(None, now(), now(), reason="cancelled"), {}
        entry = entry_find(cache, key)
        if entry is not None and entry_restore(entry, job):
            logger.info("step %s reused cache entry %s", job.name, key[:12])
            return reused_outcome(entry), provenance(entry, hit=True)

        outcome = executor.run(job, cancelled)
        stored = entry_store(cache, key, job, outcome) if outcome.ok else None
    if stored is None:
        return outcome, {"key": key, "hit": False, "stored": False}
    evict(cache)
    return outcome, provenance(stored, hit=False)
