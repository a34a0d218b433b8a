"""Register a published pyhf likelihood as an analysis of the generic workflow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.conf import settings

from recast.catalogue import loader
from recast.catalogue.models import Analysis, WorkflowVersion
from recast.catalogue.services import analysis_load
from recast.core import jsonschema as schemas
from recast.core.errors import InvalidInput

TEMPLATE = "public-likelihood"
WORKSPACE_KEYS = ("channels", "observations", "measurements", "version")


def pyhf_digest(document: Any) -> str:
    """The digest pyhf records in a patchset for its background-only workspace."""
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False).encode("utf8")
    ).hexdigest()


def read_workspace(path: Path) -> tuple[bytes, dict[str, Any]]:
    content = path.read_bytes()
    document = loader.read_json(path, path.name)
    if not isinstance(document, dict) or any(k not in document for k in WORKSPACE_KEYS):
        raise InvalidInput(
            f"{path.name}: not a pyhf workspace (it needs {', '.join(WORKSPACE_KEYS)})"
        )
    if not document["measurements"] or "poi" not in document["measurements"][0].get(
        "config", {}
    ):
        raise InvalidInput(
            f"{path.name}: $.measurements[0].config.poi: the workspace names no "
            "parameter of interest"
        )
    return content, document


def read_patchset(
    path: Path, workspace: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    content = path.read_bytes()
    document = loader.read_json(path, path.name)
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("patches"), list)
        or not document["patches"]
    ):
        raise InvalidInput(
            f"{path.name}: $.patches: not a pyhf patchset with at least one patch"
        )
    expected = (document.get("metadata", {}).get("digests") or {}).get("sha256")
    if expected and expected != pyhf_digest(workspace):
        raise InvalidInput(
            f"{path.name}: $.metadata.digests.sha256: this patchset was made for "
            "another workspace"
        )
    for index, patch in enumerate(document["patches"]):
        if not isinstance(patch.get("metadata", {}).get("name"), str) or not isinstance(
            patch.get("patch"), list
        ):
            raise InvalidInput(
                f"{path.name}: $.patches[{index}]: a patch needs metadata.name and "
                "a patch list"
            )
    return content, document


def template_entry(
    slug: str,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    root = Path(settings.WORKFLOWS_DIR)
    folder = root / TEMPLATE
    template = loader.read_yaml(folder / "template.yml", f"{TEMPLATE}/template.yml")
    spec = loader.load_spec(
        folder, template["workflow"]["file"], f"{TEMPLATE}/workflow.yml"
    )
    images = loader.read_images(template, folder, root, f"{TEMPLATE}/template.yml")
    schema_path = loader.inside(
        root, folder, template["inputs"]["schema"], "template.yml", "$.inputs.schema"
    )
    return template, spec, images, loader.read_json(schema_path, schema_path.name)


def references(
    inspire: int | None, arxiv: str | None, hepdata_doi: str | None
) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    if inspire:
        refs["inspire"] = inspire
    if arxiv:
        refs["arxiv"] = arxiv
    hepdata = {"record": f"ins{inspire}"} if inspire else {}
    if hepdata_doi:
        hepdata["doi"] = hepdata_doi
    if hepdata:
        refs["hepdata"] = hepdata
    return refs


def likelihood_add(
    slug: str,
    bkgonly: Path,
    patchset: Path | None = None,
    title: str | None = None,
    collaboration: str = "unknown",
    abstract: str | None = None,
    inspire: int | None = None,
    arxiv: str | None = None,
    hepdata_doi: str | None = None,
) -> tuple[Analysis, WorkflowVersion]:
    """Check the files and the metadata, then store the analysis in one transaction."""
    if not loader.SLUG.fullmatch(slug):
        raise InvalidInput(
            f"--slug: '{slug}' is not a slug (a-z, 0-9 and -, at most 100)"
        )
    workspace_bytes, workspace = read_workspace(bkgonly)
    files = {"bkgonly": workspace_bytes}
    example: dict[str, Any] = {}
    if patchset:
        files["patchset"], document = read_patchset(patchset, workspace)
        example = {"patch": document["patches"][0]["metadata"]["name"]}

    template, spec, images, input_schema = template_entry(slug)
    document = {
        "schema": "recast/analysis/v1",
        "title": title or f"Published likelihood {slug}",
        "collaboration": collaboration,
        "abstract": abstract or f"The published likelihood {bkgonly.name}.",
        "references": references(inspire, arxiv, hepdata_doi),
        "kind": "public-likelihood",
        "likelihood": {
            name: path.name
            for name, path in (("bkgonly", bkgonly), ("patchset", patchset))
            if path
        },
        "workflow": {
            "toplevel": "../public-likelihood",
            "file": "workflow.yml",
            **{k: v for k, v in template["workflow"].items() if k == "batch"},
        },
        "images": [
            {k: i[k] for k in ("name", "tag")}
            | {"recipe": "../public-likelihood/images/pyhf"}
            for i in images
        ],
        "inputs": {"schema": input_schema, "example": example},
        "reference": {"result": "none", "tolerance": {"relative": 1e-4}},
    }
    schemas.validate(document, schemas.spec("analysis/v1"), "add-likelihood")
    entry = loader.Entry(
        slug=slug,
        folder=bkgonly.resolve().parent,
        document=document,
        input_schema=input_schema,
        example_inputs=example,
        example_files={},
        spec=spec,
        images=images,
        likelihood=files,
        batch=loader.read_batch(document, spec, f"{TEMPLATE}/template.yml"),
    )
    analysis, version, _ = analysis_load(entry)
    return analysis, version
