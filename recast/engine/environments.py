"""Step environments for the local backend: a virtual environment built from an
image's recipe (its requirements.txt and step package), keyed by the recipe's
hash, built once and shared by every run that uses the same recipe.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MARKER = "recast-env.json"


class EnvironmentBuildFailed(Exception):
    pass


def image_folder(name: str) -> str:
    """An image name as one path component (recast/pyhf -> recast-pyhf)."""
    return name.replace("/", "-")


def environment_dir(envs_dir: Path, image: dict[str, Any]) -> Path:
    return envs_dir / f"{image_folder(image['name'])}-{image['recipe_sha256'][:16]}"


def pip(venv: Path, *args: str, log: Path) -> None:
    command = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "--disable-pip-version-check",
        "-q",
        *args,
    ]
    with log.open("a") as handle:
        done = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise EnvironmentBuildFailed(
            f"pip {' '.join(args[:2])} failed (exit {done.returncode}):\n{tail}"
        )


def build(target: Path, image: dict[str, Any]) -> None:
    """Build in place: scripts in a venv name its absolute path, so it cannot be
    moved afterwards. The marker file, written last, says the build finished."""
    recipe = Path(image["recipe"])
    staging = target
    shutil.rmtree(staging, ignore_errors=True)
    log = target.with_name(f"{target.name}.build.log")
    log.write_text("")

    # --copies keeps the environment usable if the platform's own venv moves.
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(staging)], check=True)
    requirements = recipe / "requirements.txt"
    if requirements.exists():
        pip(staging, "install", "-r", str(requirements), log=log)
    if (recipe / "pyproject.toml").exists():
        # Build from a copy: setuptools writes build/ into the source folder,
        # which would change the recipe's hash.
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "recipe"
            shutil.copytree(
                recipe,
                source,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
            )
            pip(staging, "install", "--no-deps", str(source), log=log)

    freeze = subprocess.run(
        [str(staging / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    marker = {
        "image": image["name"],
        "tag": image["tag"],
        "recipe_sha256": image["recipe_sha256"],
        "packages": freeze,
    }
    (staging / f"{MARKER}.tmp").write_text(json.dumps(marker, indent=1))
    (staging / f"{MARKER}.tmp").rename(staging / MARKER)


def ensure(envs_dir: Path, image: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Return the environment of ``image`` and its description, building it if needed.

    A file lock makes concurrent workers wait for one build instead of racing.
    """
    target = environment_dir(envs_dir, image)
    if (target / MARKER).exists():
        return target, json.loads((target / MARKER).read_text())

    envs_dir.mkdir(parents=True, exist_ok=True)
    with open(envs_dir / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MARKER).exists():
            started = time.monotonic()
            logger.info(
                "building step environment %s:%s in %s",
                image["name"],
                image["tag"],
                target,
            )
            build(target, image)
            logger.info("built %s in %.0f s", target.name, time.monotonic() - started)
    return target, json.loads((target / MARKER).read_text())
