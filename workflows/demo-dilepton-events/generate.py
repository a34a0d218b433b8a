"""Generate the event samples of the demo dilepton analysis as ROOT files.

The physics is invented but shaped like a high-mass dilepton search: Drell-Yan
and ttbar backgrounds (simulated, with event weights normalised to 140 fb^-1),
"observed" data drawn from the same generators with a ttbar rate 10 % above
the simulation, and a Z' -> ll signal whose mass peak sits at the model's mass.

Each file holds TTrees (``drellyan`` and ``ttbar``; ``events`` for data
and signal) whose events hold their leptons as variable-length arrays
(``lep_pt``, ``lep_eta``, ``lep_phi`` in GeV and radians, ``lep_flavour`` 11
or 13, ``lep_charge`` +1 or -1, counted by ``nlep``), the number of b-tagged
jets ``n_bjets`` and a ``weight``. Samples keep every generated event, also
those the selection will reject, so that the sum of weights of a signal file
is its generated total.

Random numbers come from numpy's PCG64 with fixed seeds, values are rounded,
and uproot's clock and UUIDs are fixed, so running this script anywhere with
the image's pinned packages writes byte-identical files:

    python workflows/demo-dilepton-events/generate.py [--output-dir DIR]

It needs uproot, awkward and numpy: the analysis' step environment
(images/selection/requirements.txt) has them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

HERE = Path(__file__).resolve().parent
SEED = 20261204
LUMINOSITY_FB = 140.0
# Expected events (before any selection) at 140 fb^-1, and simulated events.
DRELLYAN = {"expected": 800.0, "simulated": 3000}
TTBAR = {"expected": 520.0, "simulated": 2000}
TTBAR_IN_DATA = 1.1  # the "true" ttbar rate relative to the simulation
SIGNAL_MASS = 1500.0
SIGNAL_FILES = {"example/zprime_1500_a.root": 400, "example/zprime_1500_b.root": 400}
FIXED_TIME = datetime.datetime(2026, 1, 1, 0, 0, 0)


def leptons(
    rng: np.random.Generator, mll: np.ndarray, same_flavour: np.ndarray
) -> dict[str, np.ndarray]:
    """Two leptons per event with invariant mass ``mll`` (massless leptons)."""
    n = len(mll)
    eta = rng.normal(0.0, 1.3, size=(n, 2))
    phi1 = rng.uniform(-np.pi, np.pi, size=n)
    dphi = rng.uniform(0.5 * np.pi, np.pi, size=n) * rng.choice([-1, 1], size=n)
    ratio = rng.uniform(0.35, 1.0, size=n)
    spread = np.cosh(eta[:, 0] - eta[:, 1]) - np.cos(dphi)
    pt1 = np.sqrt(mll**2 / (2 * ratio * spread))
    phi2 = (phi1 + dphi + np.pi) % (2 * np.pi) - np.pi

    first = rng.choice([11, 13], size=n)
    second = np.where(same_flavour, first, 24 - first)
    charge = rng.choice([-1, 1], size=n)
    return {
        "pt": np.stack([pt1, ratio * pt1], axis=1),
        "eta": eta,
        "phi": np.stack([phi1, phi2], axis=1),
        "flavour": np.stack([first, second], axis=1),
        "charge": np.stack([charge, -charge], axis=1),
    }


def events(
    rng: np.random.Generator,
    mll: np.ndarray,
    same_flavour: np.ndarray,
    bjet_mean: float,
    weight: float,
) -> dict[str, ak.Array]:
    """A sample as jagged lepton arrays: some events lose a lepton, some gain
    a soft third one, as a real detector would record them."""
    n = len(mll)
    pair = leptons(rng, mll, same_flavour)
    count = rng.choice([1, 2, 3], size=n, p=[0.04, 0.90, 0.06])
    soft = {
        "pt": rng.uniform(10.0, 25.0, size=(n, 1)),
        "eta": rng.normal(0.0, 1.3, size=(n, 1)),
        "phi": rng.uniform(-np.pi, np.pi, size=(n, 1)),
        "flavour": rng.choice([11, 13], size=(n, 1)),
        "charge": rng.choice([-1, 1], size=(n, 1)),
    }
    fields = {}
    for name, dtype, decimals in (
        ("pt", np.float32, 2),
        ("eta", np.float32, 3),
        ("phi", np.float32, 3),
        ("flavour", np.int32, 0),
        ("charge", np.int32, 0),
    ):
        full = np.concatenate([pair[name], soft[name]], axis=1)
        if decimals:
            full = np.round(full, decimals)
        flat = full.astype(dtype)[np.arange(3)[None, :] < count[:, None]]
        fields[name] = ak.unflatten(flat, count)
    # One record per lepton: uproot writes it as lep_pt, lep_eta, ... sharing
    # one counter branch, nlep, as ROOT analyses do.
    return {
        "lep": ak.zip(fields),
        "n_bjets": ak.Array(rng.poisson(bjet_mean, size=n).astype(np.int32)),
        "weight": ak.Array(np.full(n, weight, dtype=np.float32)),
    }


def drellyan(rng: np.random.Generator, n: int, weight: float) -> dict[str, ak.Array]:
    mll = 150.0 * rng.uniform(0.0, 1.0, size=n) ** (-1.0 / 2.5)
    return events(rng, mll, np.ones(n, dtype=bool), 0.08, weight)


def ttbar(rng: np.random.Generator, n: int, weight: float) -> dict[str, ak.Array]:
    mll = 150.0 + rng.exponential(160.0, size=n)
    return events(rng, mll, rng.uniform(size=n) < 0.5, 1.6, weight)


def zprime(rng: np.random.Generator, n: int, mass: float) -> dict[str, ak.Array]:
    mll = rng.normal(mass, 0.03 * mass, size=n)
    return events(rng, mll, np.ones(n, dtype=bool), 0.05, 1.0)


def concatenate(*samples: dict[str, ak.Array]) -> dict[str, ak.Array]:
    return {
        name: ak.concatenate([sample[name] for sample in samples])
        for name in samples[0]
    }


@contextlib.contextmanager
def fixed_clock() -> Iterator[None]:
    """uproot stamps files with the current time and takes no option for it;
    its writing modules see a datetime module whose clock is stopped."""
    stopped = types.ModuleType("datetime")
    stopped.__dict__.update(datetime.__dict__)

    class Stopped(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Stopped:  # type: ignore[override]
            return cls.fromtimestamp(FIXED_TIME.timestamp(), tz)

    stopped.datetime = Stopped  # type: ignore[attr-defined]
    names = ("writable", "_cascade", "_cascadetree", "_cascadentuple")
    modules = [sys.modules[f"uproot.writing.{name}"] for name in names]
    saved = [module.datetime for module in modules]  # type: ignore[attr-defined]
    for module in modules:
        module.datetime = stopped  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.datetime = original  # type: ignore[attr-defined]


def write(path: Path, trees: dict[str, dict[str, ak.Array]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))
    with (
        fixed_clock(),
        uproot.recreate(
            path,
            compression=uproot.ZLIB(9),
            uuid_function=lambda: uuid.UUID(int=next(counter)),
        ) as file,
    ):
        for name, branches in trees.items():
            # mktree, because assigning a dict of arrays writes an RNTuple.
            file.mktree(
                name, {key: array.type.content for key, array in branches.items()}
            )
            file[name].extend(branches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=HERE)
    target = parser.parse_args().output_dir

    simulation = np.random.Generator(np.random.PCG64(SEED))
    dy_weight = DRELLYAN["expected"] / DRELLYAN["simulated"]
    tt_weight = TTBAR["expected"] / TTBAR["simulated"]
    write(
        target / "data" / "background.root",
        {
            "drellyan": drellyan(simulation, int(DRELLYAN["simulated"]), dy_weight),
            "ttbar": ttbar(simulation, int(TTBAR["simulated"]), tt_weight),
        },
    )

    nature = np.random.Generator(np.random.PCG64(SEED + 1))
    n_dy = nature.poisson(DRELLYAN["expected"])
    n_tt = nature.poisson(TTBAR["expected"] * TTBAR_IN_DATA)
    observed = concatenate(drellyan(nature, n_dy, 1.0), ttbar(nature, n_tt, 1.0))
    order = nature.permutation(n_dy + n_tt)
    write(
        target / "data" / "observed.root",
        {"events": {name: values[order] for name, values in observed.items()}},
    )

    signal = np.random.Generator(np.random.PCG64(SEED + 2))
    for relative, n in SIGNAL_FILES.items():
        write(target / relative, {"events": zprime(signal, n, SIGNAL_MASS)})


if __name__ == "__main__":
    main()
