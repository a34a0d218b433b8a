"""Merge the selected signal files and build the HistFactory model.

The background-only workspace holds the preserved background estimate (the
selected Drell-Yan and ttbar simulation, ttbar normalised in its control
region) and the observed data; the signal becomes a JSON Patch that adds the
merged signal to it, in the format of a pyhf patchset's patch, so that the
generic public-likelihood steps (patch, fit, summarise) fit it unchanged.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from . import StepError
from .selection import REGIONS

LUMINOSITY_FB = 140.0
LUMINOSITY_UNCERTAINTY = 0.017
POI = "mu_SIG"
BACKGROUNDS = ("drellyan", "ttbar")
# Normalisation uncertainties of each sample, beyond the lepton energy scale
# and the simulation's statistics: (name, relative size).
NORMALISATION = {
    "drellyan": [("lumi", LUMINOSITY_UNCERTAINTY), ("dy_xsec", 0.05)],
    "ttbar": [],
    "signal": [("lumi", LUMINOSITY_UNCERTAINTY), ("sig_acceptance", 0.03)],
}
POINT_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,200}")


def histogram(file: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weights and sum of squared weights per bin."""
    h = file[key]
    return h.values(flow=False), h.variances(flow=False)


def read_sample(path: Path, sample: str) -> dict[str, Any]:
    try:
        file = uproot.open(path)
    except Exception as exc:  # uproot raises ValueError, OSError or its own types
        raise StepError(f"{path.name}: not a ROOT file ({exc})") from None
    with file:
        if f"{sample}/generated" not in file:
            raise StepError(f"{path.name}: holds no selected sample '{sample}'")
        content: dict[str, Any] = {
            "generated": float(file[f"{sample}/generated"].values().sum())
        }
        for key in file.keys(cycle=False, recursive=True):
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == sample:
                content[f"{parts[1]}/{parts[2]}"] = histogram(file, key)
    return content


def add(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of several selected files of one sample."""
    total: dict[str, Any] = {"generated": sum(s["generated"] for s in samples)}
    for key in samples[0]:
        if key != "generated":
            total[key] = (
                sum(s[key][0] for s in samples),
                sum(s[key][1] for s in samples),
            )
    return total


def scaled(sample: dict[str, Any], factor: float) -> dict[str, Any]:
    return {
        key: (
            value if key == "generated" else (value[0] * factor, value[1] * factor**2)
        )
        for key, value in sample.items()
    }


def modifiers(name: str, sample: dict[str, Any], region: str) -> list[dict[str, Any]]:
    variance = sample[f"{region}/nominal"][1]
    found: list[dict[str, Any]] = [
        {
            "name": "lepton_energy_scale",
            "type": "histosys",
            "data": {
                "hi_data": sample[f"{region}/les_up"][0].tolist(),
                "lo_data": sample[f"{region}/les_down"][0].tolist(),
            },
        },
        {
            "name": f"staterror_{region}",
            "type": "staterror",
            "data": np.sqrt(variance).tolist(),
        },
    ]
    for systematic, size in NORMALISATION[name]:
        found.append(
            {
                "name": systematic,
                "type": "normsys",
                "data": {"hi": 1 + size, "lo": 1 - size},
            }
        )
    if name == "ttbar":
        found.append({"name": "mu_ttbar", "type": "normfactor", "data": None})
    if name == "signal":
        found.append({"name": POI, "type": "normfactor", "data": None})
    return found


def hist_sample(name: str, sample: dict[str, Any], region: str) -> dict[str, Any]:
    return {
        "name": name,
        "data": sample[f"{region}/nominal"][0].tolist(),
        "modifiers": modifiers(name, sample, region),
    }


def present(sample: dict[str, Any], region: str) -> bool:
    """A sample with no selected event in a region stays out of it."""
    return bool(sample[f"{region}/nominal"][0].sum() > 0)


def background_workspace(reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    channels, observations = [], []
    for region in REGIONS:
        samples = [
            hist_sample(name, reference[name], region.name)
            for name in BACKGROUNDS
            if present(reference[name], region.name)
        ]
        channels.append({"name": region.name, "samples": samples})
        observed = reference["observed"][f"{region.name}/nominal"][0]
        observations.append({"name": region.name, "data": observed.tolist()})
    return {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [
            {
                "name": "dilepton",
                "config": {
                    "poi": POI,
                    "parameters": [
                        {"name": "mu_ttbar", "bounds": [[0.0, 5.0]], "inits": [1.0]},
                        {"name": POI, "bounds": [[0.0, 10.0]], "inits": [1.0]},
                    ],
                },
            }
        ],
    }


def signal_patch(
    signal: dict[str, Any], point: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """A patch of a pyhf patchset: metadata (name, labels, values) and operations."""
    operations = [
        {
            "op": "add",
            "path": f"/channels/{index}/samples/-",
            "value": hist_sample("signal", signal, region.name),
        }
        for index, region in enumerate(REGIONS)
        if present(signal, region.name)
    ]
    if not operations:
        raise StepError(
            "no signal event passes the selection: the signal files give the "
            "analysis nothing to test"
        )
    return {
        "metadata": {
            "name": point,
            "labels": list(parameters),
            "values": list(parameters.values()),
        },
        "patch": operations,
    }


def distributions(
    reference: dict[str, dict[str, Any]], signal: dict[str, Any]
) -> dict[str, Any]:
    """What the plot step draws: per region, bin edges and each sample's yields."""
    return {
        region.name: {
            "edges": list(region.edges),
            "backgrounds": {
                name: reference[name][f"{region.name}/nominal"][0].tolist()
                for name in BACKGROUNDS
            },
            "signal": signal[f"{region.name}/nominal"][0].tolist(),
            "observed": reference["observed"][f"{region.name}/nominal"][0].tolist(),
        }
        for region in REGIONS
    }


def read_parameters(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        parameters = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepError(f"{path.name}: not a JSON file ({exc})") from None
    if not isinstance(parameters, dict) or not all(
        isinstance(v, int | float | str) for v in parameters.values()
    ):
        raise StepError(f"{path.name}: model parameters must map names to values")
    return parameters


def run(
    selected: list[Path],
    reference_path: Path,
    cross_section_fb: float,
    point: str,
    parameters_path: Path | None,
    outdir: Path,
) -> dict[str, Path]:
    if not POINT_NAME.fullmatch(point):
        raise StepError(f"point name '{point}' is not a safe file name")
    if not (math.isfinite(cross_section_fb) and cross_section_fb > 0):
        raise StepError(f"cross-section {cross_section_fb} fb must be positive")
    signal = add([read_sample(path, "signal") for path in selected])
    signal = scaled(signal, cross_section_fb * LUMINOSITY_FB / signal["generated"])
    reference = {
        name: read_sample(reference_path, name) for name in (*BACKGROUNDS, "observed")
    }

    outdir.mkdir(parents=True, exist_ok=True)
    written = {
        "bkgonly": outdir / "BkgOnly.json",
        "signal": outdir / f"{point}.json",
        "distributions": outdir / "distributions.json",
    }
    documents = {
        "bkgonly": background_workspace(reference),
        "signal": signal_patch(signal, point, read_parameters(parameters_path)),
        "distributions": distributions(reference, signal),
    }
    for key, document in documents.items():
        written[key].write_text(json.dumps(document, indent=1, sort_keys=True))
    return written
