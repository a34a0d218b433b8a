"""`make images`: build the step images of the catalogued analyses on a local
Docker engine, from nothing but Debian's archive and PyPI.

No container registry is reachable, so nothing is pulled: the base is a Debian
root filesystem made with debootstrap and imported with ``docker import``, and
each image recipe (a Dockerfile with its requirements and step code) is built
``FROM`` it with wheels downloaded on the host. An image is tagged by its
recipe's hash as well as by the tag the spec names, so a changed recipe is a
new build and an unchanged one is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

from recast.catalogue.loader import recipe_sha256
from recast.engine.dockerd import EngineUnavailable, engine_ensure

logger = logging.getLogger(__name__)

BASE_IMAGE = "recast/debian-python:bookworm"
BASE_PACKAGES = "python3,python3-venv"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
RECIPE_LABEL = "org.recast.recipe-sha256"
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
# The step images' Python: bookworm's python3 is 3.11 on x86-64 with glibc
# 2.36. pip matches platform tags exactly (it widens only the old manylinux
# aliases), so every manylinux_2_Y the base can run is named.
BASE_GLIBC_MINOR = 36
WHEEL_TARGET = [
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--platform",
    "manylinux2014_x86_64",
    *(
        option
        for minor in range(17, BASE_GLIBC_MINOR + 1)
        for option in ("--platform", f"manylinux_2_{minor}_x86_64")
    ),
]


@dataclass(frozen=True)
class Recipe:
    name: str
    tag: str
    folder: Path
    sha256: str

    @property
    def recipe_tag(self) -> str:
        return recipe_tag(self.sha256)


def recipe_tag(recipe_sha256: str) -> str:
    """The tag an image built from a recipe with this hash carries."""
    return f"recipe-{recipe_sha256[:16]}"


def catalogued_recipes(workflows: Path) -> list[Recipe]:
    """Every image declared by a catalogue entry (recast.yml) or a workflow
    template (template.yml) under ``workflows``, once per name and recipe."""
    found: dict[tuple[str, Path], Recipe] = {}
    for document in sorted(workflows.glob("*/recast.yml")) + sorted(
        workflows.glob("*/template.yml")
    ):
        declared = yaml.safe_load(document.read_text()) or {}
        for image in declared.get("images") or []:
            folder = (document.parent / image["recipe"]).resolve()
            if not (folder / "Dockerfile").is_file():
                raise SystemExit(f"{document}: {folder} has no Dockerfile")
            key = (image["name"], folder)
            found[key] = Recipe(
                image["name"], str(image["tag"]), folder, recipe_sha256(folder)
            )
    return list(found.values())


def exists(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def base_build(client: docker.DockerClient, scratch: Path) -> None:
    """A minimal Debian bookworm with python3, imported as BASE_IMAGE."""
    rootfs = scratch / "rootfs"
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            "bookworm",
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # The package cache is not needed in the image.
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    tarball = scratch / "rootfs.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(rootfs, arcname=".")
    repository, tag = BASE_IMAGE.split(":")
    client.api.import_image_from_file(
        str(tarball),
        repository=repository,
        tag=tag,
        changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/sh"]'],
    )


def build_requirements(recipe: Recipe) -> list[str]:
    """What the recipe's step package needs to be built (its build-system)."""
    pyproject = recipe.folder / "pyproject.toml"
    if not pyproject.exists():
        return []
    declared = tomllib.loads(pyproject.read_text()).get("build-system", {})
    return [str(r) for r in declared.get("requires", ["setuptools"])]


def wheels_download(recipe: Recipe, wheels: Path) -> None:
    """The recipe's pinned wheels and its build requirements, for the step
    image's platform. pip keeps the files it already has."""
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = build_requirements(recipe)
    requirements = recipe.folder / "requirements.txt"
    if requirements.exists():
        wanted += ["-r", str(requirements)]
    if wanted:
        pip_download(wanted, wheels)


def pip_download(wanted: list[str], wheels: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            *WHEEL_TARGET,
            *wanted,
            "-d",
            str(wheels),
        ],
        check=True,
    )


def image_build(
    client: docker.DockerClient, recipe: Recipe, wheels: Path, log: Path
) -> None:
    """Build the recipe FROM BASE_IMAGE, with its wheels in the build context
    (a copy: the recipe folder itself stays as its hash says)."""
    with tempfile.TemporaryDirectory(dir=wheels.parent) as scratch:
        context = Path(scratch) / "context"
        shutil.copytree(recipe.folder, context, ignore=IGNORED)
        shutil.copytree(wheels, context / "wheels")
        build(
            client,
            context,
            f"{recipe.name}:{recipe.recipe_tag}",
            log,
            f"{recipe.name}:{recipe.tag}",
            {RECIPE_LABEL: recipe.sha256},
        )


def build(
    client: docker.DockerClient,
    context: Path,
    reference: str,
    log: Path,
    label: str,
    labels: dict[str, str] | None = None,
) -> None:
    """The legacy builder, through the SDK: the docker CLI first on PATH here
    has no buildx, and BuildKit is not needed for these recipes."""
    try:
        _, output = client.images.build(
            path=str(context),
            tag=reference,
            buildargs={"BASE": BASE_IMAGE},
            labels=labels or {},
            network_mode="none",
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        log.write_text(build_text(exc.build_log))
        raise SystemExit(f"building {label} failed ({exc.msg}); see {log}") from None
    log.write_text(build_text(output))


def build_text(output: Any) -> str:
    return "".join(str(chunk.get("stream", "")) for chunk in output)


def images_ensure(client: docker.DockerClient, recipes: list[Recipe], var: Path) -> int:
    """Build what is missing; return how many images were built."""
    built = 0
    var.mkdir(parents=True, exist_ok=True)
    if not exists(client, BASE_IMAGE):
        started = time.monotonic()
        print(f"building {BASE_IMAGE} with debootstrap", flush=True)
        with tempfile.TemporaryDirectory(dir=var) as scratch:
            base_build(client, Path(scratch))
        print(f"built {BASE_IMAGE} in {time.monotonic() - started:.0f} s", flush=True)
        built += 1

    for recipe in recipes:
        reference = f"{recipe.name}:{recipe.recipe_tag}"
        if exists(client, reference):
            print(f"{reference} is built", flush=True)
        else:
            started = time.monotonic()
            print(f"building {reference} from {recipe.folder}", flush=True)
            wheels = var / "wheels" / recipe.sha256[:16]
            wheels_download(recipe, wheels)
            image_build(client, recipe, wheels, var / f"{recipe.recipe_tag}.log")
            print(f"built {reference} in {time.monotonic() - started:.0f} s")
            built += 1
        # The spec names the image by its tag: point that tag at this recipe.
        client.images.get(reference).tag(recipe.name, recipe.tag)
    return built


PLATFORM_IMAGE = "recast/platform"
PLATFORM_SOURCES = [
    "recast",
    "workflows",
    "specs",
    "frontend",
    "manage.py",
    "pyproject.toml",
    "requirements.lock",
    "README.md",
]


def platform_build(client: docker.DockerClient, repo: Path, var: Path) -> str:
    """The platform's image (deploy/Dockerfile) FROM BASE_IMAGE, tagged with
    the platform's version and the hash of what goes into it."""
    digest = hashlib.sha256()
    for name in [*PLATFORM_SOURCES, "deploy/Dockerfile"]:
        digest.update(
            recipe_sha256(repo / name).encode()
            if (repo / name).is_dir()
            else (repo / name).read_bytes()
        )
    reference = f"{PLATFORM_IMAGE}:{recipe_tag(digest.hexdigest())}"
    if exists(client, reference):
        print(f"{reference} is built", flush=True)
        return reference

    wheels = var / "wheels" / "platform"
    wheels.mkdir(parents=True, exist_ok=True)
    # Some of the platform's pins exist only as source (glob2, for one): pip
    # builds those into wheels here, on a host of the image's platform.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "setuptools>=69",
            "-r",
            str(repo / "requirements.lock"),
            "-w",
            str(wheels),
        ],
        check=True,
    )
    with tempfile.TemporaryDirectory(dir=var) as scratch:
        context = Path(scratch)
        shutil.copy(repo / "deploy" / "Dockerfile", context / "Dockerfile")
        for name in PLATFORM_SOURCES:
            source = repo / name
            if source.is_dir():
                shutil.copytree(source, context / "src" / name, ignore=IGNORED)
            else:
                (context / "src").mkdir(exist_ok=True)
                shutil.copy(source, context / "src" / name)
        shutil.copytree(wheels, context / "wheels")
        build(client, context, reference, var / "platform.log", PLATFORM_IMAGE)
    client.images.get(reference).tag(PLATFORM_IMAGE, platform_version(repo))
    return reference


def platform_version(repo: Path) -> str:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=Path, default=Path("workflows"))
    parser.add_argument("--var", type=Path, default=Path("var/images"))
    parser.add_argument(
        "--platform", action="store_true", help="also build the platform's image"
    )
    arguments = parser.parse_args(argv)
    try:
        client = engine_ensure(arguments.var.resolve() / "dockerd.log")
    except EngineUnavailable as exc:
        raise SystemExit(f"make images: {exc}") from None
    recipes = catalogued_recipes(arguments.workflows)
    built = images_ensure(client, recipes, arguments.var.resolve())
    print(f"{len(recipes)} step image(s) ready, {built} built now")
    if arguments.platform:
        repo = arguments.workflows.resolve().parent
        print(
            f"platform image: {platform_build(client, repo, arguments.var.resolve())}"
        )


if __name__ == "__main__":
    main()
