"""The selected distributions: backgrounds stacked, the signal (at its
cross-section, mu = 1) stacked on top, the observed data as points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display in a step container

import matplotlib.pyplot as plt
import numpy as np

COLOURS = {"drellyan": "#4c72b0", "ttbar": "#dd8452", "signal": "#c44e52"}
LABELS = {"drellyan": "Drell-Yan", "ttbar": r"$t\bar{t}$", "signal": "signal"}
TITLES = {
    "SR": "signal region (same flavour, no b-jet)",
    "CR_top": r"$t\bar{t}$ control region (e$\mu$, b-jets)",
}


def draw(region: str, content: dict[str, Any], point: str, target: Path) -> None:
    edges = np.asarray(content["edges"], dtype=float)
    stacks = [(name, np.asarray(v)) for name, v in content["backgrounds"].items()]
    stacks.append(("signal", np.asarray(content["signal"])))
    observed = np.asarray(content["observed"])

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    bottom = np.zeros(len(edges) - 1)
    for name, values in stacks:
        if not values.any():
            continue  # a sample with no event here needs no legend entry
        label = f"{LABELS[name]} ({point})" if name == "signal" else LABELS[name]
        ax.stairs(
            bottom + values,
            edges,
            baseline=bottom,
            fill=True,
            color=COLOURS[name],
            label=label,
        )
        bottom = bottom + values
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(
        centres,
        observed,
        yerr=np.sqrt(observed),
        fmt="ko",
        markersize=4,
        label="data",
    )
    ax.set_xscale("log")
    ax.set_xticks(edges, [f"{edge:g}" for edge in edges])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yscale("log")
    ax.set_ylim(0.05, 5 * max(bottom.max(), observed.max(), 1.0))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(r"$m_{\ell\ell}$ [GeV]")
    ax.set_ylabel("events per bin")
    ax.set_title(f"{TITLES.get(region, region)}, before the fit", fontsize="medium")
    ax.legend(loc="upper right", fontsize="small")

    fig.tight_layout()
    fig.savefig(target, metadata={"Software": None})
    plt.close(fig)


def run(distributions_path: Path, point: str, outdir: Path) -> list[Path]:
    regions = json.loads(distributions_path.read_text())
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for region, content in regions.items():
        target = outdir / f"{region}.png"
        draw(region, content, point, target)
        written.append(target)
    return written
