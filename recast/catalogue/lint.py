"""`recast lint`: findings on a preserved-analysis folder or a bare yadage spec.

Each finding names the file, the JSON path, a severity (error, warning, info)
and a hint. Specs are read the way yadage reads them: multi-file specs joined
with ``$ref``, subworkflows, multistep (scatter) stages and init parameters.
No database and no network: a reference outside the spec's folder is an error.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema
import yadageschemas
import yaml
from yadageschemas.validator import validator as yadage_validator

from recast.catalogue import loader
from recast.catalogue.policy import PolicyViolation, environment_violations
from recast.core import jsonschema as schemas
from recast.core.errors import InvalidInput

DIGEST = re.compile(r"(^|@)sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Finding:
    file: str
    path: str
    severity: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def lint(target: Path) -> list[Finding]:
    """Every finding for an analysis folder (with recast.yml) or a yadage spec."""
    target = target.resolve()
    if target.is_dir() and (target / loader.ENTRY_FILE).exists():
        return lint_analysis(target)
    spec_file = target / "workflow.yml" if target.is_dir() else target
    return lint_spec(spec_file, declared=None, images=None)


def lint_analysis(folder: Path) -> list[Finding]:
    source = loader.ENTRY_FILE
    try:
        document = loader.read_yaml(folder / source, source)
    except InvalidInput as exc:
        return [Finding(source, "$", "error", exc.message, "fix the YAML syntax")]
    found = [
        Finding(source, p["path"], "error", p["message"], "see specs/analysis/v1.json")
        for p in schemas.problems(document, schemas.spec("analysis/v1"))
    ]
    if found:
        return found

    toplevel = (folder / document["workflow"]["toplevel"]).resolve()
    declared = declared_inputs(folder, document)
    images = {image["name"] for image in document["images"]}
    return lint_spec(
        toplevel / document["workflow"]["file"], declared, images
    ) + entry_checks(folder)


def entry_checks(folder: Path) -> list[Finding]:
    """What the catalogue loader checks beyond the schema (files, examples)."""
    try:
        loader.read_entry(folder, folder.parent)
    except PolicyViolation:
        # The step checks report it, at the step's own file and path.
        return []
    except InvalidInput as exc:
        return [entry_finding(folder, exc.message)]
    return []


def entry_finding(folder: Path, message: str) -> Finding:
    """The loader's message (``FILE: $.PATH: what``) as a finding on that file
    and path; a message of another shape is reported against recast.yml."""
    source, _, rest = message.partition(": ")
    path, sep, detail = rest.partition(": ")
    hint = "the catalogue would refuse this entry"
    if not (sep and path.startswith("$") and " " not in path):
        return Finding(loader.ENTRY_FILE, "$", "error", message, hint)
    file = source.split(f"{folder.name}/", 1)[-1]
    return Finding(file, path, "error", detail, hint)


def declared_inputs(folder: Path, document: dict[str, Any]) -> set[str]:
    schema = document["inputs"]["schema"]
    if isinstance(schema, str):
        schema = loader.read_json(folder / schema, schema)
    names = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
    platform = loader.PLATFORM_INIT.get(document["kind"], set())
    return names | platform | set(document.get("preserved", {}))


def load_raw(spec_file: Path) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The spec with references resolved and defaults filled, unvalidated."""
    options = {
        "toplevel": str(spec_file.parent),
        "schema_name": "yadage/workflow-schema",
        "schemadir": yadageschemas.schemadir,
        "load_as_ref": False,
    }
    try:
        return yadageschemas.load(spec_file.name, options, validate=False), []
    except (
        Exception
    ) as exc:  # yadage raises bare RuntimeErrors for unreadable references
        reason = str(exc) or "a file it refers to ($ref) could not be read"
        return None, [
            Finding(
                spec_file.name,
                "$",
                "error",
                f"cannot load the spec: {reason}",
                "check every $ref",
            )
        ]


Origin = tuple[str, str, str]  # path in the resolved spec, file, path in the file


def follow(toplevel: Path, reference: str) -> tuple[Any, str]:
    """The part of a file a ``$ref`` points at, and its JSON path in that file.
    Raises OSError, yaml.YAMLError or LookupError when it cannot be read."""
    name, _, pointer = reference.partition("#")
    target = yaml.safe_load((toplevel / name).read_text())
    parts: list[str | int] = []
    for part in (p for p in pointer.split("/") if p):
        key: str | int = int(part) if isinstance(target, list) else part
        if not isinstance(target, list | dict):
            raise LookupError(part)
        target = target[key]  # type: ignore[index]
        parts.append(key)
    return target, schemas.json_path(parts)


def origins(value: Any, toplevel: Path, where: str = "$") -> list[Origin]:
    """Where each part of the spec that a ``$ref`` brought in was written."""
    if isinstance(value, dict) and isinstance(value.get("$ref"), str):
        try:
            target, inner = follow(toplevel, value["$ref"])
        except (OSError, yaml.YAMLError, LookupError, ValueError):
            return []  # load_raw reports a reference it cannot read
        name = value["$ref"].partition("#")[0]
        found = [(where, name, inner)]
        for path, file, deeper in origins(target, toplevel, where):
            # A $ref inside the referenced part names a file of its own.
            found.append((path, file, deeper))
        return found
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += origins(item, toplevel, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += origins(item, toplevel, f"{where}[{index}]")
    return found


def relocated(finding: Finding, table: list[Origin]) -> Finding:
    """The finding against the file that holds the part it is about, with the
    JSON path within that file."""
    best: Origin | None = None
    for where, file, inner in table:
        under = finding.path == where or finding.path.startswith(
            (f"{where}.", f"{where}[")
        )
        if under and (best is None or len(where) > len(best[0])):
            best = (where, file, inner)
    if best is None:
        return finding
    where, file, inner = best
    return replace(finding, file=file, path=inner + finding.path[len(where) :])


def closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For "is not valid under any of the given schemas", the sub-error of the
    alternative that came closest, so the message names the real cause."""
    while error.context:
        depth = max(len(e.absolute_path) for e in error.context)
        if depth <= len(error.absolute_path):
            break
        deepest = [e for e in error.context if len(e.absolute_path) == depth]
        if all(e.validator == "enum" for e in deepest):
            return merged_enum(deepest)
        error = deepest[0]
    return error


def merged_enum(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    """One error listing every value the alternatives would have accepted."""
    allowed = sorted({str(v) for e in errors for v in e.validator_value})
    first = errors[0]
    return jsonschema.ValidationError(
        f"{first.instance!r} is not one of {allowed}", path=first.absolute_path
    )


def lint_spec(
    spec_file: Path, declared: set[str] | None, images: set[str] | None
) -> list[Finding]:
    name = spec_file.name
    if not spec_file.exists():
        return [
            Finding(
                name,
                "$",
                "error",
                "file not found",
                "give a folder with recast.yml or a yadage spec",
            )
        ]
    spec, found = load_raw(spec_file)
    if spec is None:
        return found

    try:
        table = origins(yaml.safe_load(spec_file.read_text()), spec_file.parent)
    except yaml.YAMLError:
        table = []
    validator = yadage_validator("yadage/workflow-schema", yadageschemas.schemadir)
    for error in sorted(
        validator.iter_errors(spec), key=lambda e: list(e.absolute_path)
    ):
        error = closest(error)
        found.append(
            Finding(
                name,
                schemas.json_path(error.absolute_path),
                "error",
                error.message,
                "see the yadage schemas",
            )
        )
    if not found:
        found += step_findings(name, spec, images)
        found += init_findings(name, spec, declared)
        found += output_findings(name, spec)
    found = [relocated(finding, table) for finding in found]
    return sorted(found, key=lambda f: (f.file, f.path, f.message))


def stages_of(
    spec: dict[str, Any], prefix: str = "$"
) -> list[tuple[str, dict[str, Any], bool]]:
    """Every stage, subworkflows' included: (JSON path, stage, top level?)."""
    found = []
    for index, stage in enumerate(spec.get("stages", [])):
        where = f"{prefix}.stages[{index}]"
        found.append((where, stage, prefix == "$"))
        inner = stage.get("scheduler", {}).get("workflow")
        if isinstance(inner, dict):
            found += [
                (p, s, False)
                for p, s, _ in stages_of(inner, f"{where}.scheduler.workflow")
            ]
    return found


def image_findings(
    file: str, where: str, environment: dict[str, Any], images: set[str] | None
) -> list[Finding]:
    image, tag = environment.get("image", ""), environment.get("imagetag", "latest")
    found = []
    if images is not None and image not in images:
        found.append(
            Finding(
                file,
                f"{where}.image",
                "error",
                f"image '{image}' is not declared in recast.yml",
                "add it to images with its build recipe",
            )
        )
    if DIGEST.search(str(tag)) or "@sha256:" in image:
        return found
    if tag in ("", "latest"):
        found.append(
            Finding(
                file,
                f"{where}.imagetag",
                "error",
                f"image '{image}' is not pinned (tag '{tag}')",
                "pin a version tag, better a digest (image@sha256:...)",
            )
        )
    else:
        found.append(
            Finding(
                file,
                f"{where}.imagetag",
                "info",
                f"image '{image}' is pinned by tag '{tag}' only",
                "a digest (sha256:...) cannot be moved to other content; a tag can",
            )
        )
    return found


def step_findings(
    file: str, spec: dict[str, Any], images: set[str] | None
) -> list[Finding]:
    found = []
    for where, stage, _ in stages_of(spec):
        step = stage.get("scheduler", {}).get("step")
        if not isinstance(step, dict):
            continue
        environment = step.get("environment", {})
        env_path = f"{where}.scheduler.step.environment"
        violations = environment_violations(environment)
        found += [
            Finding(file, f"{env_path}.{v.field}", "error", v.message, v.hint)
            for v in violations
        ]
        if any(v.field == "environment_type" for v in violations):
            continue
        found += image_findings(file, env_path, environment, images)
    return found


def selectors(value: Any) -> list[dict[str, Any]]:
    """Stage-output selectors inside a parameter value, however nested."""
    if isinstance(value, dict):
        own = (
            [value]
            if "output" in value and ("step" in value or "stages" in value)
            else []
        )
        return own + [s for v in value.values() for s in selectors(v)]
    if isinstance(value, list):
        return [s for v in value for s in selectors(v)]
    return []


def parameters_of(stage: dict[str, Any]) -> list[tuple[str, Any]]:
    parameters = stage.get("scheduler", {}).get("parameters", [])
    if isinstance(parameters, dict):
        return list(parameters.items())
    return [
        (p.get("key", ""), p.get("value")) for p in parameters if isinstance(p, dict)
    ]


def stage_names(selector: dict[str, Any]) -> set[str]:
    reference = selector.get("step") or selector.get("stages") or ""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_-]*", str(reference)))


def init_findings(
    file: str, spec: dict[str, Any], declared: set[str] | None
) -> list[Finding]:
    if declared is None:
        return []
    found = []
    for where, stage, top in stages_of(spec):
        for index, (key, value) in enumerate(parameters_of(stage)):
            for selector in selectors(value):
                if (
                    top
                    and "init" in stage_names(selector)
                    and selector["output"] not in declared
                ):
                    found.append(
                        Finding(
                            file,
                            f"{where}.scheduler.parameters[{index}]",
                            "error",
                            f"parameter '{key}' reads init '{selector['output']}', "
                            "which the input schema does not declare",
                            "declare it in recast.yml inputs.schema properties",
                        )
                    )
    return found


def published(step: dict[str, Any]) -> list[str]:
    publisher = step.get("publisher", {})
    for field in ("publish", "outputmap"):
        if isinstance(publisher.get(field), dict):
            return list(publisher[field])
    return (
        [publisher["outputkey"]] if isinstance(publisher.get("outputkey"), str) else []
    )


def output_findings(file: str, spec: dict[str, Any]) -> list[Finding]:
    stages = stages_of(spec)
    used: dict[str, set[str]] = {}
    for _, stage, _ in stages:
        for _, value in parameters_of(stage):
            for selector in selectors(value):
                for name in stage_names(selector):
                    used.setdefault(name, set()).add(selector["output"])
    read_from = set(used)
    found = []
    for where, stage, _ in stages:
        step = stage.get("scheduler", {}).get("step")
        name = stage.get("name", "")
        if not isinstance(step, dict) or name not in read_from:
            continue  # a final stage: what it publishes is the workflow's result
        for output in published(step):
            if output not in used[name]:
                found.append(
                    Finding(
                        file,
                        f"{where}.scheduler.step.publisher",
                        "warning",
                        f"stage '{name}' publishes '{output}', which no stage reads",
                        "read it downstream, or stop publishing it",
                    )
                )
    return found
