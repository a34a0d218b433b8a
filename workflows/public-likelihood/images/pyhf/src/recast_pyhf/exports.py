"""Traced likelihoods kept between fit processes, as ``jax.export`` artefacts.

A fit process spends most of a new structure's first seconds building its
template model on JAX and tracing pyhf's Python code into a computation; the
persistent compilation cache keeps XLA's compile of that computation, not the
tracing. A structure's functions are therefore also kept, exported (StableHLO,
serialized by JAX), in a folder inside the compilation cache, and a later
process of the same step environment loads them instead of tracing again.

The key covers everything the traced computation depends on: the structure's
fingerprint (every structural array, value for value, and the shapes of the
inputs), where its inputs are, the versions of JAX, jaxlib and pyhf, pyhf's
precision, and the source of the modules that trace. A loaded structure still
passes the same self-check against pyhf's own numbers as a traced one, so a
stale or damaged entry is refused, not used: its points then go through
plain pyhf, as any refused structure's do.

Only where the platform names a compilation cache (``JAX_COMPILATION_CACHE_DIR``,
which the local backend sets) is anything kept; elsewhere every process traces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import pyhf

logger = logging.getLogger(__name__)

FOLDER = "recast-exports"
# The modules whose code ends up in a traced computation.
TRACED_MODULES = ("compiled.py", "newton.py", "exports.py")


def folder() -> Path | None:
    cache_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(cache_dir) / FOLDER if cache_dir else None


@cache
def environment_digest() -> str:
    """What every traced computation of this process depends on, beside its
    structure: library versions, precision, and the tracing code itself."""
    digest = hashlib.sha256()
    versions = (jax.__version__, jaxlib.__version__, pyhf.__version__)
    digest.update(repr((versions, pyhf.tensorlib.precision)).encode())
    here = Path(__file__).parent
    for name in TRACED_MODULES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def key_of(structure_key: str, layout_digest: str) -> str:
    digest = hashlib.sha256(environment_digest().encode())
    digest.update(f"{structure_key} {layout_digest}".encode())
    return digest.hexdigest()


def load(key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The entry kept under ``key``: its metadata and its functions, ready to
    call. None where nothing is kept, or where the entry cannot be read (it
    is then traced again and written anew)."""
    where = folder()
    if where is None:
        return None
    path = where / f"{key}.json"
    try:
        entry = json.loads(path.read_text())
        functions = {
            name: callable_of(jax.export.deserialize(bytearray(base64.b64decode(text))))
            for name, text in entry.pop("functions").items()
        }
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged entry is traced again, not trusted
        logger.warning("ignoring the exported structure %s: %s", path.name, exc)
        return None
    return entry, functions


def save(
    key: str,
    metadata: dict[str, Any],
    functions: dict[str, tuple[Any, tuple[Any, ...]]],
) -> dict[str, Any]:
    """Export ``functions`` (name: jitted function and example arguments),
    keep them under ``key`` with ``metadata``, and return them ready to call.

    Exporting traces each function once, as its first call would; the
    process then calls the exported computation, as a later process that
    loads it will, so both compute the same thing. Where no folder is named,
    or JAX cannot export a function, the jitted functions are returned and
    nothing is kept. The entry is written whole or not at all (a temporary
    file renamed): two processes that traced the same structure at once each
    leave a complete one.
    """
    where = folder()
    if where is None:
        return {name: jitted for name, (jitted, _) in functions.items()}
    try:
        exported = {
            name: jax.export.export(jitted)(*shapes(args))
            for name, (jitted, args) in functions.items()
        }
        serialized = {
            name: base64.b64encode(found.serialize()).decode()
            for name, found in exported.items()
        }
    except Exception as exc:
        logger.warning("could not export the structure's functions: %s", exc)
        return {name: jitted for name, (jitted, _) in functions.items()}

    write(where / f"{key}.json", json.dumps({**metadata, "functions": serialized}))
    return {name: callable_of(found) for name, found in exported.items()}


def write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, suffix=".tmp", delete=False
        ) as handle:
            handle.write(text)
        # Readable by every step of the environment, as JAX's own cache files.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except OSError as exc:
        logger.warning("could not keep the traced structure in %s: %s", path, exc)


def callable_of(exported: Any) -> Any:
    return jax.jit(exported.call)


def shapes(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), arg
        )
        for arg in args
    )
