"""Generate the demo analysis' likelihood: a background-only workspace and a patchset.

The numbers are invented, but the shape follows published ATLAS likelihoods: two
signal regions binned in a transverse-mass variable, two control regions that
fix the ttbar and W+jets normalisations, luminosity, jet-energy-scale (shape),
theory (normalisation) and MC-statistics uncertainties, and a background-only
workspace whose measurement names a parameter of interest that only the signal
patches carry.

Only the standard library is used, and no random numbers: the "observed" counts
are a fixed pattern of fluctuations around the background, so running this
script anywhere writes byte-identical files.

    python workflows/demo-stop-1l/generate.py [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# channel -> sample -> expected events per bin
BACKGROUNDS: dict[str, dict[str, list[float]]] = {
    "CR_ttbar": {
        "ttbar": [412.0, 288.0],
        "wjets": [61.0, 37.0],
        "singletop": [38.0, 21.0],
        "diboson": [6.0, 4.0],
    },
    "CR_wjets": {
        "ttbar": [58.0, 31.0],
        "wjets": [497.0, 265.0],
        "singletop": [17.0, 9.0],
        "diboson": [24.0, 13.0],
    },
    "SR_high": {
        "ttbar": [6.1, 3.2, 1.4],
        "wjets": [2.2, 1.1, 0.5],
        "singletop": [1.3, 0.7, 0.3],
        "diboson": [0.8, 0.5, 0.3],
    },
    "SR_low": {
        "ttbar": [38.0, 21.0, 9.5],
        "wjets": [11.0, 6.2, 2.9],
        "singletop": [5.1, 2.8, 1.2],
        "diboson": [2.4, 1.5, 0.8],
    },
}
# relative jet-energy-scale shift per sample (up; down mirrors it), growing per bin
JES = {"ttbar": 0.05, "wjets": 0.07, "singletop": 0.06, "diboson": 0.04, "signal": 0.03}
THEORY = {"singletop": 0.15, "diboson": 0.20}
MC_STAT = 0.04  # relative MC statistical uncertainty of each background bin
LUMI_SIGMA = 0.017

M_STOP = [450, 550, 650, 750, 850]
M_LSP = [0, 100, 200, 300]
POI = "mu_SIG"


def rounded(values: list[float]) -> list[float]:
    return [round(v, 6) for v in values]


def shifted(yields: list[float], rel: float, sign: int) -> list[float]:
    return rounded([y * (1 + sign * rel * (1 + 0.5 * i)) for i, y in enumerate(yields)])


def background_sample(channel: str, name: str, yields: list[float]) -> dict[str, Any]:
    modifiers: list[dict[str, Any]] = [
        {"name": "lumi", "type": "lumi", "data": None},
        {
            "name": "JES",
            "type": "histosys",
            "data": {
                "hi_data": shifted(yields, JES[name], 1),
                "lo_data": shifted(yields, JES[name], -1),
            },
        },
        {
            "name": f"staterror_{channel}",
            "type": "staterror",
            "data": rounded([MC_STAT * y for y in yields]),
        },
    ]
    if name in ("ttbar", "wjets"):
        modifiers.append({"name": f"mu_{name}", "type": "normfactor", "data": None})
    else:
        sigma = THEORY[name]
        modifiers.append(
            {
                "name": f"theory_{name}",
                "type": "normsys",
                "data": {"hi": 1 + sigma, "lo": 1 - sigma},
            }
        )
    return {"name": name, "data": rounded(yields), "modifiers": modifiers}


def observed(yields: list[float], seed: int) -> list[float]:
    """Counts that fluctuate around the background in a fixed, seeded pattern."""
    out = []
    for i, y in enumerate(yields):
        pull = math.sin(
            1.7 * (i + 1) + 0.9 * seed
        )  # in [-1, 1]: about one sigma at most
        out.append(float(max(0, round(y + pull * math.sqrt(y)))))
    return out


def background_only() -> dict[str, Any]:
    channels, observations = [], []
    for seed, (channel, samples) in enumerate(sorted(BACKGROUNDS.items())):
        channels.append(
            {
                "name": channel,
                "samples": [
                    background_sample(channel, name, yields)
                    for name, yields in sorted(samples.items())
                ],
            }
        )
        total = [sum(col) for col in zip(*samples.values(), strict=True)]
        observations.append({"name": channel, "data": observed(total, seed)})
    parameters = [
        {
            "name": "lumi",
            "auxdata": [1.0],
            "sigmas": [LUMI_SIGMA],
            "bounds": [[0.915, 1.085]],
            "inits": [1.0],
        },
        {"name": POI, "bounds": [[0.0, 10.0]], "inits": [1.0]},
    ]
    measurement = {
        "name": "NormalMeasurement",
        "config": {"poi": POI, "parameters": parameters},
    }
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [measurement],
        "version": "1.0.0",
    }


def signal_yields(m_stop: int, m_lsp: int) -> dict[str, list[float]]:
    """Signal per channel: a falling cross-section times a mass-splitting acceptance."""
    xsec = 150.0 * math.exp(-(m_stop - 450) / 105.0)
    split = (m_stop - m_lsp) / 1000.0
    low = [xsec * f * (1.2 - split) for f in (0.22, 0.14, 0.07)]
    high = [xsec * f * split for f in (0.16, 0.18, 0.15)]
    return {
        "CR_ttbar": [0.02 * xsec, 0.01 * xsec],
        "CR_wjets": [0.005 * xsec, 0.003 * xsec],
        "SR_high": high,
        "SR_low": low,
    }


def signal_sample(channel: str, yields: list[float]) -> dict[str, Any]:
    return {
        "name": "signal",
        "data": rounded(yields),
        "modifiers": [
            {"name": POI, "type": "normfactor", "data": None},
            {"name": "lumi", "type": "lumi", "data": None},
            {
                "name": "theory_signal",
                "type": "normsys",
                "data": {"hi": 1.1, "lo": 0.9},
            },
            {
                "name": "JES",
                "type": "histosys",
                "data": {
                    "hi_data": shifted(yields, JES["signal"], 1),
                    "lo_data": shifted(yields, JES["signal"], -1),
                },
            },
        ],
    }


def patch(m_stop: int, m_lsp: int, channel_index: dict[str, int]) -> dict[str, Any]:
    ops = [
        {
            "op": "add",
            "path": f"/channels/{channel_index[ch]}/samples/-",
            "value": signal_sample(ch, ys),
        }
        for ch, ys in sorted(signal_yields(m_stop, m_lsp).items())
    ]
    return {
        "metadata": {"name": f"stop_{m_stop}_{m_lsp}", "values": [m_stop, m_lsp]},
        "patch": ops,
    }


def digest(spec: dict[str, Any]) -> str:
    # Same canonical form as pyhf.utils.digest, so pyhf accepts the patchset.
    canonical = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf8")).hexdigest()


def patchset(bkgonly: dict[str, Any]) -> dict[str, Any]:
    index = {ch["name"]: i for i, ch in enumerate(bkgonly["channels"])}
    patches = [patch(s, n, index) for s in M_STOP for n in M_LSP if s - n >= 250]
    metadata = {
        "name": "demo-stop-1l-signals",
        "description": "stop pair production, stop -> top neutralino; invented "
        "yields made by recast for its demo, not a published record",
        "digests": {"sha256": digest(bkgonly)},
        "labels": ["m_stop", "m_lsp"],
        # pyhf's patchset schema requires an INSPIRE id; all zeros marks "none",
        # since the demo is not published.
        "references": {"hepdata": "ins0000000"},
    }
    return {"metadata": metadata, "patches": patches, "version": "1.0.0"}


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--output-dir", type=Path, default=HERE)
    out = args.parse_args().output_dir

    bkgonly = background_only()
    signals = patchset(bkgonly)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "example").mkdir(parents=True, exist_ok=True)
    write(out / "data" / "BkgOnly.json", bkgonly)
    write(out / "data" / "patchset.json", signals)
    example = next(
        p for p in signals["patches"] if p["metadata"]["name"] == "stop_650_100"
    )
    write(
        out / "example" / "stop_650_100.json",
        {
            "metadata": {
                **example["metadata"],
                "digests": signals["metadata"]["digests"],
                "labels": signals["metadata"]["labels"],
            },
            "patch": example["patch"],
        },
    )


if __name__ == "__main__":
    main()
