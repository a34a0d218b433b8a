"""Describe an archive folder as an RO-Crate (Workflow Run Crate profile) and as
a W3C PROV document, from the run's provenance record.

Both are written into the folder before its manifest, so the manifest covers
them too. No Django here: the caller hands over the record (run.json's content).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import prov.model as prov
from rocrate.model.computerlanguage import ComputerLanguage
from rocrate.model.contextentity import ContextEntity
from rocrate.rocrate import ROCrate

CRATE_FILE = "ro-crate-metadata.json"
PROV_FILE = "provenance.json"
SPEC_FILE = "workflow/workflow.json"
GRAPH_FILE = "graph.svg"  # the steps and their final states, drawn
WFRUN = "https://w3id.org/ro/wfrun"
PROFILES = {
    f"{WFRUN}/process/0.5": "Process Run Crate",
    f"{WFRUN}/workflow/0.5": "Workflow Run Crate",
}
STATUS = {"succeeded": "CompletedActionStatus", "finished": "CompletedActionStatus"}
RECAST = "https://recast.dev/ns#"


def action_status(status: str) -> dict[str, str]:
    name = STATUS.get(status, "FailedActionStatus")
    return {"@id": f"http://schema.org/{name}"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_in(folder: Path, *tops: str) -> list[str]:
    found = []
    for top in tops:
        found += sorted(
            p.relative_to(folder).as_posix()
            for p in (folder / top).rglob("*")
            if p.is_file()
        )
    return found


def add_files(crate: ROCrate, folder: Path, relatives: list[str]) -> dict[str, Any]:
    entities = {}
    for relative in relatives:
        path = folder / relative
        properties = {"sha256": sha256(path), "contentSize": str(path.stat().st_size)}
        entities[relative] = crate.add_file(
            path, dest_path=relative, properties=properties
        )
    return entities


def add_profiles(crate: ROCrate) -> None:
    for uri, name in PROFILES.items():
        profile = crate.add(
            ContextEntity(
                crate, uri, properties={"@type": "CreativeWork", "name": name}
            )
        )
        crate.root_dataset.append_to("conformsTo", profile)
    crate.metadata.extra_contexts.append("https://w3id.org/ro/terms/workflow-run")


def add_images(crate: ROCrate, record: dict[str, Any]) -> dict[str, Any]:
    images = {}
    for image in record["images"]:
        identifier = f"#image-{image['name'].replace('/', '-')}-{image['tag']}"
        properties = {
            "@type": "ContainerImage",
            "additionalType": {
                "@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"
            },
            "name": image["name"],
            "tag": image["tag"],
            "description": f"built from its recipe, sha256 {image['recipe_sha256']}",
        }
        if image.get("digest"):
            properties["sha256"] = image["digest"].removeprefix("sha256:")
        images[f"{image['name']}:{image['tag']}"] = crate.add(
            ContextEntity(crate, identifier, properties=properties)
        )
    return images


def batch_note(record: dict[str, Any]) -> str:
    """How the point's steps were shared; empty when it ran alone."""
    batch = record.get("batch")
    if not batch:
        return ""
    others = [p for p in batch["points"] if p != record["point"]]
    return (
        f"ran in batch {batch['id']}: each step ran once, in one process, for "
        f"{batch['size']} points, this one and {', '.join(others)}"
    )


def add_steps(
    crate: ROCrate,
    record: dict[str, Any],
    files: dict[str, Any],
    images: dict[str, Any],
) -> None:
    shared = batch_note(record)
    for step in record["steps"]:
        outputs = [
            entity
            for relative, entity in files.items()
            if relative.startswith(f"outputs/{step['name']}/")
        ]
        log = files.get(f"logs/{step['name']}.log")
        properties = {
            "name": f"step {step['name']}",
            "description": step["command"],
            "startTime": step["started_at"],
            "endTime": step["finished_at"],
            "actionStatus": action_status(step["kind"]),
            "exitCode": step["exit_code"],
        }
        if step.get("reason"):
            properties["error"] = step["reason"]
        if shared:
            properties["disambiguatingDescription"] = shared
        if step.get("cache", {}).get("hit"):
            properties["description"] += f" ({reuse_sentence(step['cache'])})"
            properties["isBasedOn"] = add_cache_entry(crate, step["cache"])
        action = crate.add_action(
            images.get(step["image"]),
            identifier=f"#step-{step['name']}",
            object=None,
            result=[*outputs, *([log] if log else [])],
            properties=properties,
        )
        action["instrument"] = images.get(step["image"])


def reuse_sentence(cache: dict[str, Any]) -> str:
    sentence = f"reused from cache entry {cache['key']}"
    if cache.get("producer"):
        sentence += f", first produced by run {cache['producer']}"
    return sentence


def add_cache_entry(crate: ROCrate, cache: dict[str, Any]) -> Any:
    """The step-cache entry whose outputs a step reused, as a context entity."""
    return crate.add(
        ContextEntity(
            crate,
            f"#cache-entry-{cache['key']}",
            properties={
                "@type": "CreativeWork",
                "name": f"step cache entry {cache['key']}",
                "description": reuse_sentence(cache),
                "dateCreated": cache.get("created_at", ""),
            },
        )
    )


def write_crate(folder: Path, record: dict[str, Any]) -> None:
    crate = ROCrate(gen_preview=False)
    crate.name = (
        f"recast run {record['run']}: {record['analysis']}, point {record['point']}"
    )
    crate.description = (
        "A reinterpretation run archived by recast, with every file's sha256."
    )
    crate.license = "https://creativecommons.org/licenses/by/4.0/"
    add_profiles(crate)

    language = crate.add(
        ComputerLanguage(
            crate,
            "#yadage",
            properties={
                "name": "yadage",
                "url": {"@id": "https://yadage.readthedocs.io"},
            },
        )
    )
    workflow = crate.add_workflow(
        folder / SPEC_FILE,
        dest_path=SPEC_FILE,
        main=True,
        lang=language,
        properties={
            "name": f"{record['analysis']} workflow v{record['workflow']['version']}",
            "sha256": sha256(folder / SPEC_FILE),
            "version": str(record["workflow"]["version"]),
            "description": f"recast workflow digest {record['workflow']['digest']}",
        },
    )
    inputs = add_files(crate, folder, files_in(folder, "inputs"))
    produced = files_in(folder, "outputs", "logs", "yadage")
    produced += [f for f in ("result.json", GRAPH_FILE) if (folder / f).exists()]
    outputs = add_files(crate, folder, produced)
    properties = {
        "name": crate.name,
        "actionStatus": action_status(record["status"]),
        "startTime": record["started_at"],
        "endTime": record["finished_at"],
    }
    if batch_note(record):
        properties["disambiguatingDescription"] = batch_note(record)
    crate.add_action(
        workflow,
        identifier=f"#run-{record['run']}",
        object=list(inputs.values()),
        result=[outputs["result.json"]] if "result.json" in outputs else [],
        properties=properties,
    )
    add_steps(crate, record, outputs, add_images(crate, record))
    (folder / CRATE_FILE).write_text(
        json.dumps(crate.metadata.generate(), indent=1, sort_keys=True)
    )


def write_prov(folder: Path, record: dict[str, Any]) -> None:
    """PROV-JSON: the run and each step as activities, every file as an entity
    with its sha256, the request and the workflow version as entities, and the
    platform as the agent."""
    document = prov.ProvDocument()
    document.add_namespace("recast", RECAST)
    platform = document.agent(
        "recast:platform", {"recast:version": record["platform"]["recast"]}
    )
    request = document.entity(f"recast:request-{record['request']}")
    spec = document.entity(
        f"recast:workflow-{record['workflow']['digest'][:16]}",
        {
            "recast:version": record["workflow"]["version"],
            "recast:sha256": record["workflow"]["digest"],
        },
    )
    run = document.activity(
        f"recast:run-{record['run']}",
        record["started_at"],
        record["finished_at"],
        {
            "recast:point": record["point"],
            "recast:backend": record["backend"],
            "recast:status": record["status"],
        },
    )
    document.wasAssociatedWith(run, platform)
    document.used(run, request)
    document.used(run, spec)
    batch = prov_batch(document, record)
    if batch is not None:
        document.wasInformedBy(run, batch)

    files = {
        rel: file_entity(document, folder, rel)
        for rel in files_in(folder, "inputs", "outputs", "logs")
    }
    for relative, entity in files.items():
        if relative.startswith("inputs/"):
            document.used(run, entity)
    for step in record["steps"]:
        add_prov_step(document, run, step, files, batch)
    (folder / PROV_FILE).write_text(str(document.serialize(format="json", indent=1)))


def prov_batch(
    document: prov.ProvDocument, record: dict[str, Any]
) -> prov.ProvActivity | None:
    """The batch the point ran in, as an activity naming its points and runs."""
    batch = record.get("batch")
    if not batch:
        return None
    return document.activity(
        f"recast:batch-{batch['id']}",
        None,
        None,
        {
            "prov:label": batch_note(record),
            "recast:size": batch["size"],
            "recast:points": " ".join(batch["points"]),
            "recast:runs": " ".join(batch["runs"]),
        },
    )


def file_entity(
    document: prov.ProvDocument, folder: Path, relative: str
) -> prov.ProvEntity:
    return document.entity(
        f"recast:file/{relative}",
        {"recast:sha256": sha256(folder / relative), "prov:label": relative},
    )


def add_prov_step(
    document: prov.ProvDocument,
    run: prov.ProvActivity,
    step: dict[str, Any],
    files: dict[str, Any],
    batch: prov.ProvActivity | None = None,
) -> None:
    activity = document.activity(
        f"recast:step-{step['name']}",
        step["started_at"] or None,
        step["finished_at"] or None,
        {
            "recast:command": step["command"],
            "recast:image": step["image"],
            "recast:backend": step.get("environment", {}).get("backend", ""),
            "recast:exitCode": step["exit_code"]
            if step["exit_code"] is not None
            else -1,
        },
    )
    document.wasInformedBy(activity, run)
    if batch is not None:
        # The step's one process served every point of the batch.
        document.wasInformedBy(activity, batch)
    reused = prov_cache_entry(document, activity, step.get("cache", {}))
    for relative, entity in files.items():
        if (
            relative.startswith(f"outputs/{step['name']}/")
            or relative == f"logs/{step['name']}.log"
        ):
            document.wasGeneratedBy(entity, activity)
            if reused is not None:
                document.wasDerivedFrom(entity, reused)


def prov_cache_entry(
    document: prov.ProvDocument, activity: prov.ProvActivity, cache: dict[str, Any]
) -> prov.ProvEntity | None:
    """A reused step used its cache entry, which the first run produced."""
    if not cache.get("hit"):
        return None
    attributes = {"prov:label": reuse_sentence(cache)}
    if cache.get("producer"):
        attributes["recast:firstProducedBy"] = f"recast:run-{cache['producer']}"
    entry = document.entity(f"recast:cache-entry-{cache['key']}", attributes)
    document.used(activity, entry)
    return entry


def describe(folder: Path, record: dict[str, Any], spec: dict[str, Any]) -> None:
    """Write the workflow spec, the RO-Crate metadata and the PROV document."""
    (folder / SPEC_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True))
    write_crate(folder, record)
    write_prov(folder, record)
