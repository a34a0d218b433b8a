"""Read and check a preserved-analysis folder, without touching the database.

Every problem is raised as InvalidInput naming the file and, for a schema
problem, the JSON path of the failing field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yadage import workflow_loader

from recast.catalogue.policy import PolicyViolation, environment_violations
from recast.core import jsonschema as schemas
from recast.core.errors import InvalidInput

ENTRY_FILE = "recast.yml"
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
DEFAULT_BATCH_POINTS = 64
# Init parameters the platform itself gives a workflow, by kind of analysis.
PLATFORM_INIT = {
    "public-likelihood": {"bkgonly", "signals"},
    "event-level": {"point", "model_parameters"},
    "workflow": {"point", "model_parameters"},
}


@dataclass
class Entry:
    """A checked catalogue entry, ready to be stored."""

    slug: str
    folder: Path
    document: dict[str, Any]
    input_schema: dict[str, Any]
    example_inputs: dict[str, Any]
    example_files: dict[str, bytes | list[bytes]]
    spec: dict[str, Any]
    images: list[dict[str, Any]]
    reference_result: dict[str, Any] = field(default_factory=dict)
    likelihood: dict[str, bytes] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    preserved: dict[str, bytes] = field(default_factory=dict)

    @property
    def preserved_sha256(self) -> dict[str, str]:
        return {
            name: hashlib.sha256(content).hexdigest()
            for name, content in self.preserved.items()
        }

    @property
    def digest(self) -> str:
        return workflow_digest(
            self.spec, self.images, self.batch, self.preserved_sha256
        )


def workflow_digest(
    spec: dict[str, Any],
    images: list[dict[str, Any]],
    batch: dict[str, Any] | None = None,
    preserved: dict[str, str] | None = None,
) -> str:
    """sha256 over what a run executes: the spec, the images' recipes, the batch
    declaration and the preserved files (each of the last two left out when
    absent, so older digests stay what they were)."""
    pinned = [
        {k: image[k] for k in ("name", "tag", "recipe_sha256")} for image in images
    ]
    content: dict[str, Any] = {"spec": spec, "images": pinned}
    if batch:
        content["batch"] = batch
    if preserved:
        content["preserved"] = preserved
    canonical = json.dumps(content, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def inside(
    root: Path, folder: Path, relative: str, source: str, json_path: str
) -> Path:
    """Resolve ``relative`` under ``folder``; it must exist and stay under ``root``."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise InvalidInput(
            f"{source}: {json_path}: '{relative}' points outside the workflows folder"
        )
    if not target.exists():
        raise InvalidInput(f"{source}: {json_path}: '{relative}' does not exist")
    return target


def read_yaml(path: Path, source: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{source}: file not found") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInput(f"{source}: not valid YAML{where}") from None


def read_json(path: Path, source: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{source}: not valid JSON ({exc})") from None


def recipe_sha256(folder: Path) -> str:
    """A hash over every file of an image recipe: names and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if "__pycache__" in relative or ".egg-info" in relative:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_spec(toplevel: Path, file: str, source: str) -> dict[str, Any]:
    """The yadage workflow with every $ref resolved and yadage's defaults filled in."""
    try:
        spec: dict[str, Any] = workflow_loader.workflow(file, toplevel=str(toplevel))
    except (
        Exception
    ) as exc:  # yadage raises bare RuntimeErrors and jsonschema errors alike
        raise InvalidInput(
            f"{source}: not a valid yadage workflow: {yadage_reason(exc)}"
        ) from None
    return spec


def yadage_reason(exc: Exception) -> str:
    path = getattr(exc, "absolute_path", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if path is not None:
        return f"{schemas.json_path(path)}: {message}"
    if isinstance(exc, RuntimeError) and not str(exc):
        return "a referenced file could not be read"
    return message


def steps_of(
    spec: dict[str, Any], prefix: str = "$"
) -> list[tuple[str, dict[str, Any]]]:
    """Every packtivity step of a workflow, subworkflows included, with its path."""
    found = []
    for index, stage in enumerate(spec.get("stages", [])):
        scheduler = stage.get("scheduler", {})
        where = f"{prefix}.stages[{index}]"
        if "workflow" in scheduler:
            found += steps_of(scheduler["workflow"], f"{where}.scheduler.workflow")
        if "step" in scheduler:
            found.append((f"{where} ({stage.get('name')})", scheduler["step"]))
    return found


def check_steps(
    spec: dict[str, Any], images: list[dict[str, Any]], source: str
) -> None:
    declared = {image["name"] for image in images}
    for where, step in steps_of(spec):
        environment = step.get("environment", {})
        for violation in environment_violations(environment):
            raise PolicyViolation(
                f"{source}: step {where}: environment.{violation.field}: "
                f"{violation.message} ({violation.hint})"
            )
        if environment.get("image") not in declared:
            raise InvalidInput(
                f"{source}: step {where}: environment.image "
                f"'{environment.get('image')}' "
                f"is not declared in recast.yml images"
            )


def is_file(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("format") == "file"


def file_fields(schema: dict[str, Any]) -> dict[str, bool]:
    """The inputs that are files: name -> whether it is a list of files."""
    fields = {}
    for name, sub in schema.get("properties", {}).items():
        if is_file(sub):
            fields[name] = False
        elif isinstance(sub, dict) and is_file(sub.get("items")):
            fields[name] = True
    return fields


def read_images(
    doc: dict[str, Any], folder: Path, root: Path, source: str
) -> list[dict[str, Any]]:
    images = []
    for index, image in enumerate(doc["images"]):
        recipe = inside(
            root, folder, image["recipe"], source, f"$.images[{index}].recipe"
        )
        images.append(
            {**image, "recipe": str(recipe), "recipe_sha256": recipe_sha256(recipe)}
        )
    return images


def read_inputs(
    doc: dict[str, Any], folder: Path, root: Path, source: str
) -> tuple[dict[str, Any], dict[str, bytes | list[bytes]]]:
    schema = doc["inputs"]["schema"]
    if isinstance(schema, str):
        path = inside(root, folder, schema, source, "$.inputs.schema")
        schema = read_json(path, display(path, root))
    schemas.check_schema(schema, f"{source}: $.inputs.schema")

    example = doc["inputs"]["example"]
    schemas.validate(example, schema, source, base="$.inputs.example")
    files: dict[str, bytes | list[bytes]] = {}
    for name, many in file_fields(schema).items():
        if name not in example:
            continue
        where = f"$.inputs.example.{name}"
        if many:
            files[name] = [
                inside(root, folder, relative, source, f"{where}[{i}]").read_bytes()
                for i, relative in enumerate(example[name])
            ]
        else:
            files[name] = inside(
                root, folder, example[name], source, where
            ).read_bytes()
    return schema, files


def read_preserved(
    doc: dict[str, Any], schema: dict[str, Any], folder: Path, root: Path, source: str
) -> dict[str, bytes]:
    """The preserved files; their names must not clash with the point's inputs
    or with what the platform gives the workflow."""
    taken = set(schema.get("properties", {})) | PLATFORM_INIT[doc["kind"]]
    files = {}
    for name, relative in doc.get("preserved", {}).items():
        if name in taken:
            raise InvalidInput(
                f"{source}: $.preserved.{name}: the name is taken by an input or "
                "by the platform; choose another"
            )
        files[name] = inside(
            root, folder, relative, source, f"$.preserved.{name}"
        ).read_bytes()
    return files


def read_reference(
    doc: dict[str, Any], folder: Path, root: Path, source: str
) -> dict[str, Any]:
    path = inside(
        root, folder, doc["reference"]["result"], source, "$.reference.result"
    )
    result = read_json(path, display(path, root))
    schemas.validate(result, schemas.spec("result/v1"), display(path, root))
    return {"result": result, "tolerance": doc["reference"]["tolerance"]}


def read_likelihood(
    doc: dict[str, Any], folder: Path, root: Path, source: str
) -> dict[str, bytes]:
    files = {}
    for name, relative in doc.get("likelihood", {}).items():
        path = inside(root, folder, relative, source, f"$.likelihood.{name}")
        content = path.read_bytes()
        if not isinstance(read_json(path, display(path, root)), dict):
            raise InvalidInput(
                f"{display(path, root)}: a {name} file must hold a JSON object"
            )
        files[name] = content
    return files


def init_parameters(spec: dict[str, Any]) -> set[str]:
    """The init outputs the top-level stages read."""
    names = set()
    for stage in spec.get("stages", []):
        parameters = stage.get("scheduler", {}).get("parameters", [])
        # yadage's loader turns the mapping into a list of {key, value}.
        values = (
            parameters.values()
            if isinstance(parameters, dict)
            else [p.get("value") for p in parameters if isinstance(p, dict)]
        )
        for value in values:
            if isinstance(value, dict) and value.get("step") == "init":
                names.add(str(value.get("output")))
    return names


def read_batch(
    doc: dict[str, Any], spec: dict[str, Any], source: str
) -> dict[str, Any]:
    """The workflow's batch declaration (empty: one point per execution)."""
    batch: dict[str, Any] = dict(doc["workflow"].get("batch") or {})
    if not batch:
        return {}
    if doc["kind"] != "public-likelihood":
        # A workflow analysis' point inputs are its init parameters, with no
        # rule yet for sharing them between points.
        raise InvalidInput(
            f"{source}: $.workflow.batch: only public-likelihood analyses can "
            "run several points in one execution"
        )
    if batch["parameter"] not in init_parameters(spec):
        raise InvalidInput(
            f"{source}: $.workflow.batch.parameter: no stage reads the init "
            f"parameter '{batch['parameter']}'"
        )
    batch.setdefault("max_points", DEFAULT_BATCH_POINTS)
    return batch


def read_entry(folder: Path, root: Path) -> Entry:
    """Read and check ``folder/recast.yml`` and everything it refers to."""
    source = display(folder / ENTRY_FILE, root)
    if not SLUG.fullmatch(folder.name):
        raise InvalidInput(
            f"{source}: the folder name '{folder.name}' is not a slug (a-z, 0-9 and -)"
        )
    doc = read_yaml(folder / ENTRY_FILE, source)
    schemas.validate(doc, schemas.spec("analysis/v1"), source)

    toplevel = inside(
        root, folder, doc["workflow"]["toplevel"], source, "$.workflow.toplevel"
    )
    spec_file = inside(
        root, toplevel, doc["workflow"]["file"], source, "$.workflow.file"
    )
    spec = load_spec(toplevel, doc["workflow"]["file"], display(spec_file, root))
    images = read_images(doc, folder, root, source)
    check_steps(spec, images, display(spec_file, root))

    input_schema, example_files = read_inputs(doc, folder, root, source)
    batch = read_batch(doc, spec, source)
    return Entry(
        slug=folder.name,
        folder=folder,
        document=doc,
        input_schema=input_schema,
        example_inputs=doc["inputs"]["example"],
        example_files=example_files,
        spec=spec,
        images=images,
        reference_result=read_reference(doc, folder, root, source),
        likelihood=read_likelihood(doc, folder, root, source),
        batch=batch,
        preserved=read_preserved(doc, input_schema, folder, root, source),
    )


def entry_folders(root: Path) -> list[Path]:
    """Analysis folders under ``root``: those with a recast.yml, in name order."""
    return sorted(p.parent for p in root.glob(f"*/{ENTRY_FILE}"))
