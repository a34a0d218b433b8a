"""Writes to the catalogue. Each entry is stored in one transaction: a bad
entry leaves nothing behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max

from recast.catalogue import loader
from recast.catalogue.models import Analysis, WorkflowVersion
from recast.core.errors import InvalidInput
from recast.storage.services import blob_store

logger = logging.getLogger(__name__)


@dataclass
class LoadOutcome:
    slug: str
    version: int | None = None
    created: bool = False
    error: str | None = None


def stored_inputs(entry: loader.Entry) -> dict[str, Any]:
    """Example inputs, each file replaced by ``sha256:<digest>`` of its stored copy."""
    inputs = dict(entry.example_inputs)
    for name, content in entry.example_files.items():
        if isinstance(content, list):
            inputs[name] = [f"sha256:{blob_store(c).sha256}" for c in content]
        else:
            inputs[name] = f"sha256:{blob_store(content).sha256}"
    return inputs


def analysis_fields(entry: loader.Entry) -> dict[str, Any]:
    doc = entry.document
    likelihood = {
        name: blob_store(content).sha256 for name, content in entry.likelihood.items()
    }
    return {
        "title": doc["title"],
        "collaboration": doc["collaboration"],
        "abstract": doc["abstract"],
        "keywords": doc.get("keywords", []),
        "references": doc["references"],
        "kind": doc["kind"],
        "input_schema": entry.input_schema,
        "example_inputs": stored_inputs(entry),
        "reference_result": entry.reference_result.get("result", {}),
        "reference_tolerance": entry.reference_result.get("tolerance", {}),
        "bkgonly_sha256": likelihood.get("bkgonly", ""),
        "patchset_sha256": likelihood.get("patchset", ""),
        "source": str(entry.folder),
    }


def workflow_version_add(
    analysis: Analysis, entry: loader.Entry
) -> tuple[WorkflowVersion, bool]:
    """Make the entry's workflow current, adding a version if its digest is new."""
    digest = entry.digest
    existing = analysis.workflow_versions.filter(digest=digest).first()
    if existing and existing.is_current:
        return existing, False

    analysis.workflow_versions.filter(is_current=True).update(is_current=False)
    if existing:
        existing.is_current = True
        existing.save(update_fields=["is_current"])
        return existing, False

    last = analysis.workflow_versions.aggregate(n=Max("number"))["n"] or 0
    for content in entry.preserved.values():
        blob_store(content)
    version = WorkflowVersion.objects.create(
        analysis=analysis,
        number=last + 1,
        digest=digest,
        spec=entry.spec,
        images=entry.images,
        batch=entry.batch,
        preserved=entry.preserved_sha256,
    )
    return version, True


@transaction.atomic
def analysis_load(entry: loader.Entry) -> tuple[Analysis, WorkflowVersion, bool]:
    """Create or update the analysis of ``entry``; returns it, its current
    workflow version and whether that version is new."""
    analysis, _ = Analysis.objects.select_for_update().update_or_create(
        slug=entry.slug, defaults=analysis_fields(entry)
    )
    version, created = workflow_version_add(analysis, entry)
    logger.info(
        "catalogue: loaded %s, workflow v%s (%s)",
        entry.slug,
        version.number,
        version.digest[:12],
    )
    return analysis, version, created


def catalogue_load(root: Path, only: list[str] | None = None) -> list[LoadOutcome]:
    """Check and load every analysis folder under ``root`` (or those named in
    ``only``). A bad entry is reported and skipped; the others are loaded."""
    folders = loader.entry_folders(root)
    if only:
        missing = sorted(set(only) - {f.name for f in folders})
        if missing:
            raise InvalidInput(
                f"no analysis folder named {', '.join(missing)} under {root}"
            )
        folders = [f for f in folders if f.name in only]

    outcomes = []
    for folder in folders:
        try:
            _, version, created = analysis_load(loader.read_entry(folder, root))
        except InvalidInput as exc:
            outcomes.append(LoadOutcome(folder.name, error=exc.message))
            continue
        outcomes.append(LoadOutcome(folder.name, version.number, created))
    return outcomes
