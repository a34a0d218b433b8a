"""Turn the fit step's output into recast result documents (specs/result/v1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = "https://recast.dev/specs/result/v1.json"


def model_parameters(metadata: dict[str, Any]) -> dict[str, Any]:
    labels = metadata.get("labels") or []
    values = metadata.get("values") or []
    return {str(k): v for k, v in zip(labels, values, strict=False)}


def fit_section(fit: dict[str, Any]) -> dict[str, Any]:
    """Status and message always; path and sizes when the point got that far."""
    section = {"status": fit["fit_status"], "message": fit["fit_message"]}
    optional = {
        "path": fit.get("fit_path"),
        "path_reason": fit.get("fit_path_reason") or None,
        "n_fits": fit.get("n_fits"),
        "limits": fit.get("limits"),
        "n_parameters": fit.get("n_parameters"),
        "n_bins": fit.get("n_bins"),
    }
    section.update({k: v for k, v in optional.items() if v is not None})
    return section


def document(fit: dict[str, Any], software: dict[str, str]) -> dict[str, Any]:
    cls_obs = fit["cls_obs"]
    return {
        "$schema": SCHEMA,
        "point": fit["point"],
        "model_parameters": model_parameters(fit["metadata"]),
        "poi": fit["poi"] or "",
        "test_statistic": "qtilde",
        "calculator": "asymptotics",
        "cl": 0.95,
        "cls_obs": fit["cls_obs"],
        "cls_exp": fit["cls_exp"],
        "mu_up_obs": fit["mu_up_obs"],
        "mu_up_exp": fit["mu_up_exp"],
        "excluded": cls_obs is not None and cls_obs < 0.05,
        "fit": fit_section(fit),
        "software": software,
    }


def run(fits_path: Path, outdir: Path) -> Path:
    fits = json.loads(fits_path.read_text())
    software = {
        "pyhf": fits["pyhf_version"],
        "backend": f"{fits['backend']} with "
        + fits.get("optimizer", "the scipy optimizer"),
        "interpolation": "normsys code4, histosys code4p",
    }
    if "limit_rtol" in fits:
        software["limit_rtol"] = f"{fits['limit_rtol']:g}"
    results = [document(fit, software) for fit in fits["fits"]]

    outdir.mkdir(parents=True, exist_ok=True)
    for result in results:
        (outdir / f"{result['point']}.json").write_text(json.dumps(result, indent=1))
    target = outdir / "results.json"
    target.write_text(
        json.dumps({"pyhf_version": fits["pyhf_version"], "results": results}, indent=1)
    )
    return target
