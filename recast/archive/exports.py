"""Exports of a finished request to the field's records: a CAP deposit per
point, a HEPData submission of the scan, and an INSPIRE/Zenodo-ready citable
record with the original paper's BibTeX. No Django here: the caller passes the
analysis and the points as plain dictionaries.

``analysis``: slug, title, collaboration, abstract, keywords, references
(arxiv, inspire, hepdata {record, doi}), workflow (the yadage spec), url.
``points``: one run summary each (point, status, model_parameters, cls_obs,
cls_exp, mu_up_obs, mu_up_exp, fit_status, archive_sha256).
"""

from __future__ import annotations

import gc
import json
import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import yadageschemas
import yaml
from hepdata_lib import Submission, Table, Variable
from hepdata_validator.full_submission_validator import FullSubmissionValidator

from recast.core.results import SIGMA_NAMES

CAP_BASE = "https://analysispreservation.cern.ch/schemas/deposits/records"


class ExportError(Exception):
    pass


def succeeded(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = [
        p for p in points if p["status"] == "succeeded" and p["cls_obs"] is not None
    ]
    if not done:
        raise ExportError("the request has no succeeded point to export")
    return done


def arxiv_url(analysis: dict[str, Any]) -> str | None:
    arxiv = analysis["references"].get("arxiv")
    return f"https://arxiv.org/abs/{arxiv}" if arxiv else None


def cap_record(
    analysis: dict[str, Any], request: dict[str, Any], point: dict[str, Any]
) -> dict[str, Any]:
    """A CAP deposit (ATLAS analysis schema) for one reinterpreted point."""
    refs = analysis["references"]
    publication: dict[str, Any] = {"type": "article", "access": "public"}
    if arxiv_url(analysis):
        publication["url"] = arxiv_url(analysis)
    cited = []
    if refs.get("inspire"):
        cited.append(f"INSPIRE {refs['inspire']}")
    if refs.get("hepdata", {}).get("doi"):
        cited.append(f"HEPData {refs['hepdata']['doi']}")
    if cited:
        publication["comment"] = "; ".join(cited)
    return {
        "$schema": f"{CAP_BASE}/atlas-analysis-v0.0.1.json",
        "general_title": f"Reinterpretation of {analysis['title']}: {point['point']}",
        "basic_info": {
            "analysis_title": analysis["title"],
            "glance_id": refs.get("glance", analysis["slug"]),
            "abstract": analysis["abstract"],
        },
        "publications": [publication],
        "workflows": [
            {"analysis_title": analysis["title"], "workflow": analysis["workflow"]}
        ],
        "likelihoods": analysis.get("likelihood", {}),
        "limits": {"CLs_obs": point["cls_obs"], "CLs_exp": list(point["cls_exp"])},
        "_recast": {
            "request": request["id"],
            "point": point["point"],
            "model_parameters": point["model_parameters"],
            "mu_up_obs": point["mu_up_obs"],
            "mu_up_exp": point["mu_up_exp"],
            "archive_sha256": point["archive_sha256"],
        },
    }


def write_cap(
    analysis: dict[str, Any],
    request: dict[str, Any],
    points: list[dict[str, Any]],
    outdir: Path,
) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for point in succeeded(points):
        target = outdir / f"{point['point']}.json"
        target.write_text(
            json.dumps(cap_record(analysis, request, point), indent=1, sort_keys=True)
        )
        written.append(target)
    return written


def unbinned(
    name: str, values: list[Any], independent: bool, units: str = ""
) -> Variable:
    variable = Variable(
        name,
        is_independent=independent,
        is_binned=False,
        units=units,
        zero_uncertainties_warning=False,
    )
    variable.values = values
    return variable


def parameter_labels(points: list[dict[str, Any]]) -> list[str]:
    """The model parameters' names in the order the points give them (the
    analysis' patchset order, which the caller's summaries follow): a reader
    expects (m_stop, m_lsp), not whatever an alphabetical sort makes of it."""
    return list(dict.fromkeys(k for p in points for k in p["model_parameters"]))


def has_limits(points: list[dict[str, Any]]) -> bool:
    """Whether any point has an upper limit: a request for CLs at mu = 1 only
    has none, and columns of dashes would say nothing."""
    return any(v is not None for p in points for v in [p["mu_up_obs"], *p["mu_up_exp"]])


def results_table(analysis: dict[str, Any], points: list[dict[str, Any]]) -> Table:
    table = Table("CLs and upper limits")
    limits = has_limits(points)
    table.description = (
        f"Reinterpretation of {analysis['title']} with recast: CLs at mu = 1 "
        "(qtilde, asymptotic formulae)"
        + (
            " and 95% CL upper limits on the signal strength mu"
            if limits
            else " (no upper limits on mu were computed)"
        )
        + ", for each model point."
    )
    table.location = "recast reinterpretation results"
    table.keywords["observables"] = ["CLs", "mu_up"] if limits else ["CLs"]
    labels = parameter_labels(points) or ["point"]
    for label in labels:
        values = [
            p["model_parameters"].get(label, p["point"]) if label != "point" else i
            for i, p in enumerate(points)
        ]
        table.add_variable(unbinned(label, values, independent=True))
    table.add_variable(
        unbinned("CLs observed", [p["cls_obs"] for p in points], independent=False)
    )
    for index, sigma in enumerate(SIGMA_NAMES):
        table.add_variable(
            unbinned(
                f"CLs expected ({sigma})", [p["cls_exp"][index] for p in points], False
            )
        )
    if limits:
        limit_columns(table, points)
    return table


def limit_columns(table: Table, points: list[dict[str, Any]]) -> None:
    table.add_variable(
        unbinned(
            "mu upper limit observed", [limit(p["mu_up_obs"]) for p in points], False
        )
    )
    for index, sigma in enumerate(SIGMA_NAMES):
        values = [limit(p["mu_up_exp"][index]) for p in points]
        table.add_variable(
            unbinned(f"mu upper limit expected ({sigma})", values, False)
        )


def limit(value: float | None) -> float | str:
    # HEPData marks a missing value with a dash.
    return "-" if value is None else value


def write_hepdata(
    analysis: dict[str, Any],
    request: dict[str, Any],
    points: list[dict[str, Any]],
    outdir: Path,
) -> Path:
    """Write submission.yaml and the table files into ``outdir`` and check them
    with hepdata-validator; raise ExportError with its messages otherwise."""
    done = succeeded(points)
    outdir.mkdir(parents=True, exist_ok=True)
    submission = Submission()
    refs = analysis["references"]
    submission.comment = (
        f"Reinterpretation of {analysis['title']} ({analysis['collaboration']}) "
        f"made with recast, request {request['id']}."
    )
    if refs.get("inspire"):
        submission.add_record_id(refs["inspire"], "inspire")
    if arxiv_url(analysis):
        submission.add_link("Original paper on arXiv", arxiv_url(analysis))
    submission.add_link("The analysis on recast", analysis["url"])

    header = {
        "data_license": submission.get_license(),
        "comment": submission.comment,
        "additional_resources": submission.additional_resources,
    }
    if submission.record_ids:
        header["record_ids"] = submission.record_ids
    with (outdir / "submission.yaml").open("w") as handle:
        yaml.dump(header, handle, default_flow_style=False, explicit_start=True)
    results_table(analysis, done).write_output(str(outdir))
    check_hepdata(outdir)
    return outdir / "submission.yaml"


def check_hepdata(outdir: Path) -> None:
    validator = FullSubmissionValidator()
    with warnings.catch_warnings():
        # hepdata-validator leaves its YAML files open; they close when collected.
        warnings.simplefilter("ignore", ResourceWarning)
        valid = validator.validate(directory=str(outdir))
        gc.collect()
    if valid:
        return
    messages = [
        f"{Path(name).name}: {m.message}"
        for name, found in validator.get_messages().items()
        for m in found
    ]
    raise ExportError("hepdata-validator: " + "; ".join(messages))


def bibtex(analysis: dict[str, Any]) -> str:
    """A BibTeX entry of the original paper, from the stored metadata."""
    refs = analysis["references"]
    key = re.sub(r"[^A-Za-z0-9]", "", analysis["collaboration"]) or "recast"
    fields = {
        "author": f"{{{analysis['collaboration']} Collaboration}}",
        "title": f"{{{analysis['title']}}}",
    }
    if refs.get("arxiv"):
        fields |= {"eprint": refs["arxiv"], "archivePrefix": "arXiv"}
    if refs.get("doi"):
        fields["doi"] = refs["doi"]
    if refs.get("inspire"):
        fields["note"] = f"INSPIRE record {refs['inspire']}"
    body = ",\n".join(f'    {name} = "{value}"' for name, value in fields.items())
    return f"@article{{{key}:{refs.get('inspire') or analysis['slug']},\n{body}\n}}\n"


def citable_record(
    analysis: dict[str, Any], request: dict[str, Any], points: list[dict[str, Any]]
) -> dict[str, Any]:
    """A record ready for an INSPIRE or Zenodo deposit of the reinterpretation."""
    done = succeeded(points)
    refs = analysis["references"]
    return {
        "title": f"Reinterpretation of {analysis['title']}",
        "requester": request["owner"] or "anonymous",
        "date": request["finished_at"],
        "analysis": {
            "slug": analysis["slug"],
            "title": analysis["title"],
            "collaboration": analysis["collaboration"],
            "inspire": refs.get("inspire"),
            "arxiv": refs.get("arxiv"),
            "hepdata": refs.get("hepdata"),
            "url": analysis["url"],
        },
        "signal_model": {
            "parameters": parameter_labels(done),
            "points": [{"point": p["point"], **p["model_parameters"]} for p in done],
        },
        "result": [
            {
                k: p[k]
                for k in (
                    "point",
                    "cls_obs",
                    "cls_exp",
                    "mu_up_obs",
                    "mu_up_exp",
                    "fit_status",
                )
            }
            for p in done
        ],
        "archive_sha256": {p["point"]: p["archive_sha256"] for p in done},
        "references": [{"inspire": refs.get("inspire"), "arxiv": refs.get("arxiv")}],
        "software": {"recast": request["platform_version"]},
    }


def write_inspire(
    analysis: dict[str, Any],
    request: dict[str, Any],
    points: list[dict[str, Any]],
    outdir: Path,
) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    record = outdir / "record.json"
    record.write_text(
        json.dumps(citable_record(analysis, request, points), indent=1, sort_keys=True)
    )
    cite = outdir / "original.bib"
    cite.write_text(bibtex(analysis))
    return [record, cite]


def analyses_json(analyses: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """The catalogue in HEPData's format for reinterpretation tools: one entry
    per analysis with an INSPIRE record, linking back to the platform."""
    listed = [a for a in analyses if a["references"].get("inspire")]
    return {
        "tool": "recast",
        "version": 2,
        "implementations_description": "preserved analyses that recast reinterprets",
        "url_templates": {
            "main_url": f"{base_url.rstrip('/')}/api/v1/analyses/{{name}}/"
        },
        "analyses": [
            {
                "inspire_id": a["references"]["inspire"],
                "implementations": [{"name": a["slug"]}],
            }
            for a in sorted(listed, key=lambda a: a["slug"])
        ],
    }


def cap_schema_store(schemas_dir: Path) -> dict[str, Any]:
    """CAP's deposit schemas by the URL they refer to each other with.

    Read leniently: upstream ``atlas-workflows.json`` has a stray closing brace
    after its deposit schema, so each file's ``deposit_schema`` object is
    decoded on its own, and its name is the file's last ``"name"`` value."""
    store = {}
    for path in sorted(schemas_dir.glob("*.json")):
        text = path.read_text()
        key = text.find('"deposit_schema"')
        names = re.findall(r'"name":\s*"([^"]+)"', text)
        if key < 0 or not names:
            continue
        schema, _ = json.JSONDecoder().raw_decode(text, text.index("{", key))
        store[f"{CAP_BASE}/{names[-1]}-v0.0.1.json"] = schema
    # The ATLAS schema names a variant of the workflows schema without cycles.
    workflows = store.get(f"{CAP_BASE}/atlas-workflows-v0.0.1.json")
    if workflows is not None:
        store[f"{CAP_BASE}/atlas-workflows-no-circ-refs-v0.0.1.json"] = workflows
    fill_from_yadage(store)
    return store


def refs_in(document: Any) -> list[str]:
    if isinstance(document, dict):
        found = [document["$ref"]] if isinstance(document.get("$ref"), str) else []
        return found + [r for value in document.values() for r in refs_in(value)]
    if isinstance(document, list):
        return [r for value in document for r in refs_in(value)]
    return []


def cap_url(ref: str) -> str:
    name = ref.split("#")[0].rsplit("/", 1)[-1].removesuffix(".json")
    return f"{CAP_BASE}/{name.removesuffix('-v0.0.1')}-v0.0.1.json"


def fill_from_yadage(store: dict[str, Any]) -> None:
    """CAP embeds the yadage schemas; those a CAP schema refers to but the CAP
    set at hand lacks are taken from the installed yadage-schemas package,
    their relative references rewritten to CAP's URLs."""
    local = {p.stem: p for p in Path(str(yadageschemas.schemadir)).rglob("*.json")}
    missing = {
        cap_url(r) for s in store.values() for r in refs_in(s) if r.startswith(CAP_BASE)
    }
    unavailable: set[str] = set()
    while missing - set(store) - unavailable:
        url = sorted(missing - set(store) - unavailable)[0]
        name = url.rsplit("/", 1)[-1].removesuffix("-v0.0.1.json")
        if name not in local:
            unavailable.add(url)  # resolving it later fails loudly, offline
            continue
        text = local[name].read_text()
        for ref in set(refs_in(json.loads(text))):
            text = text.replace(
                f'"{ref}"', json.dumps(cap_url(ref) + ("#" if "#" in ref else ""))
            )
        store[url] = json.loads(text)
        missing |= {cap_url(r) for r in refs_in(store[url])}


def cap_problems(record: dict[str, Any], schemas_dir: Path) -> list[str]:
    """Every way ``record`` breaks CAP's ATLAS analysis schema (empty: valid).
    A reference to a schema not in ``schemas_dir`` is reported, never fetched."""
    store = cap_schema_store(schemas_dir)
    root = store[f"{CAP_BASE}/atlas-analysis-v0.0.1.json"]

    def offline(uri: str) -> Any:
        raise ExportError(f"CAP schema {uri} is not in {schemas_dir}")

    resolver = jsonschema.RefResolver(
        f"{CAP_BASE}/atlas-analysis-v0.0.1.json",
        root,
        store=store,
        handlers={"https": offline, "http": offline},
    )
    validator = jsonschema.Draft4Validator(root, resolver=resolver)
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    return [
        f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors
    ]
