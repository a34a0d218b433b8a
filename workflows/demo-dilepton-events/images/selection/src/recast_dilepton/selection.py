"""The preserved event selection: two opposite-charge leptons, then a
same-flavour signal region without b-jets and an electron-muon ttbar control
region with b-jets, each binned in the dilepton mass.

Histograms are filled with ``hist`` (weighted storage, so the Monte Carlo
statistical uncertainty travels with them) and written as ROOT TH1Ds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import uproot

from . import StepError

LEPTON_PT = 30.0  # GeV
LEPTON_ETA = 2.5
MLL_MIN = 200.0  # GeV
# The lepton energy scale uncertainty: every lepton's momentum up or down 2 %.
LEPTON_SCALE = 0.02
VARIATIONS = {
    "nominal": 1.0,
    "les_up": 1.0 + LEPTON_SCALE,
    "les_down": 1.0 - LEPTON_SCALE,
}
BRANCHES = (
    "lep_pt",
    "lep_eta",
    "lep_phi",
    "lep_flavour",
    "lep_charge",
    "n_bjets",
    "weight",
)


@dataclass(frozen=True)
class Region:
    name: str
    same_flavour: bool
    with_bjets: bool
    edges: tuple[float, ...]


REGIONS = (
    Region("SR", True, False, (200, 300, 450, 700, 1100, 1700, 3000)),
    Region("CR_top", False, True, (200, 400, 800, 3000)),
)


def read_tree(path: Path, tree: str) -> ak.Array:
    """The branches the selection needs, checked, as an awkward array."""
    try:
        file = uproot.open(path)
    except FileNotFoundError:
        raise StepError(f"{path.name}: file not found") from None
    except Exception as exc:  # uproot raises ValueError, OSError or its own types
        raise StepError(f"{path.name}: not a ROOT file ({exc})") from None
    with file:
        trees = sorted(
            key.split(";")[0]
            for key, kind in file.classnames().items()
            if kind in ("TTree", "ROOT::RNTuple")
        )
        if tree not in trees:
            found = ", ".join(trees) or "none"
            raise StepError(f"{path.name}: no TTree '{tree}' (TTrees found: {found})")
        available = set(file[tree].keys())
        missing = [name for name in BRANCHES if name not in available]
        if missing:
            raise StepError(
                f"{path.name}: TTree '{tree}' lacks the branches {', '.join(missing)}"
            )
        return file[tree].arrays(list(BRANCHES))


def dilepton_mass(leptons: ak.Array) -> ak.Array:
    """The invariant mass of the two leptons of each event (massless leptons)."""
    first, second = leptons[:, 0], leptons[:, 1]
    spread = np.cosh(first.eta - second.eta) - np.cos(first.phi - second.phi)
    return np.sqrt(2 * first.pt * second.pt * spread)


def fill_variation(
    events: ak.Array, scale: float, variation: str
) -> dict[str, hist.Hist]:
    """One histogram per region, with every lepton's momentum times ``scale``."""
    leptons = ak.zip(
        {
            "pt": events.lep_pt * scale,
            "eta": events.lep_eta,
            "phi": events.lep_phi,
            "flavour": events.lep_flavour,
            "charge": events.lep_charge,
        }
    )
    leptons = leptons[(leptons.pt > LEPTON_PT) & (abs(leptons.eta) < LEPTON_ETA)]
    pairs = ak.num(leptons) == 2
    leptons, rest = leptons[pairs], events[pairs]
    opposite = leptons.charge[:, 0] != leptons.charge[:, 1]
    leptons, rest = leptons[opposite], rest[opposite]
    mll = dilepton_mass(leptons)
    same = leptons.flavour[:, 0] == leptons.flavour[:, 1]

    histograms = {}
    for region in REGIONS:
        keep = (
            (same == region.same_flavour)
            & ((rest.n_bjets > 0) == region.with_bjets)
            & (mll > MLL_MIN)
        )
        h = hist.Hist(
            hist.axis.Variable(region.edges, name="mll", label="m_ll [GeV]"),
            storage=hist.storage.Weight(),
        )
        # The last bin takes everything above its lower edge.
        values = np.minimum(ak.to_numpy(mll[keep]), region.edges[-1] - 1e-3)
        h.fill(mll=values, weight=ak.to_numpy(rest.weight[keep]))
        histograms[f"{region.name}/{variation}"] = h
    return histograms


def sample_histograms(
    path: Path, tree: str, variations: tuple[str, ...] = tuple(VARIATIONS)
) -> dict[str, Any]:
    """The sample's histograms, and its sum of weights before any selection
    (``generated``, which normalises a signal to its cross-section)."""
    events = read_tree(path, tree)
    if len(events) == 0:
        raise StepError(f"{path.name}: TTree '{tree}' has no events")
    histograms: dict[str, Any] = {}
    for variation in variations:
        scale = VARIATIONS[variation]
        histograms.update(fill_variation(events, scale, variation))
    generated = hist.Hist(hist.axis.Regular(1, 0, 1), storage=hist.storage.Weight())
    generated.fill(np.full(len(events), 0.5), weight=ak.to_numpy(events.weight))
    histograms["generated"] = generated
    return histograms


def write(target: Path, samples: dict[str, dict[str, Any]]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(target) as file:
        for sample, histograms in samples.items():
            for name, h in histograms.items():
                file[f"{sample}/{name}"] = h
    return target


def run_signal(signal: Path, outdir: Path) -> Path:
    """Select one signal event file (TTree ``events``)."""
    return write(
        outdir / "histograms.root", {"signal": sample_histograms(signal, "events")}
    )


def run_reference(background: Path, observed: Path, outdir: Path) -> Path:
    """Select the preserved background samples and the observed data."""
    samples = {
        "drellyan": sample_histograms(background, "drellyan"),
        "ttbar": sample_histograms(background, "ttbar"),
        "observed": sample_histograms(observed, "events", ("nominal",)),
    }
    return write(outdir / "histograms.root", samples)
