"""CLs against mu with the expected band, one picture per point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot, imported only when there is something to draw (a
    CLs-only scan has no curves): the import is most of this step's time."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a step container
    import matplotlib.pyplot as plt

    return plt


def brazil(fit: dict[str, Any], target: Path) -> None:
    plt = pyplot()
    scan = fit["scan"]
    limits = [v for v in [fit["mu_up_obs"], *fit["mu_up_exp"]] if v is not None]
    top = 1.25 * max(limits) if limits else max(scan["mu"])
    shown = [i for i, m in enumerate(scan["mu"]) if m <= top * 1.0001]
    mu = [scan["mu"][i] for i in shown]
    observed = [scan["cls_obs"][i] for i in shown]
    band = list(zip(*(scan["cls_exp"][i] for i in shown), strict=True))

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    ax.fill_between(
        mu, band[0], band[4], color="#f5d000", label=r"expected $\pm 2\sigma$"
    )
    ax.fill_between(
        mu, band[1], band[3], color="#2ca02c", label=r"expected $\pm 1\sigma$"
    )
    ax.plot(mu, band[2], "k--", label="expected")
    ax.plot(mu, observed, "k-", marker=".", label="observed")
    ax.axhline(0.05, color="#d62728", label=r"CL$_s$ = 0.05")
    ax.set_xlabel(r"signal strength $\mu$")
    ax.set_ylabel(r"CL$_s$")
    ax.set_title(fit["point"])
    ax.set_xlim(0, top)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right", fontsize="small")

    fig.tight_layout()
    fig.savefig(target, metadata={"Software": None, "CreationDate": None})
    plt.close(fig)


def run(fits_path: Path, outdir: Path) -> list[Path]:
    fits = json.loads(fits_path.read_text())["fits"]
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for fit in fits:
        if len(fit["scan"]["mu"]) < 2:
            continue
        target = outdir / f"{fit['point']}.png"
        brazil(fit, target)
        written.append(target)
    return written
