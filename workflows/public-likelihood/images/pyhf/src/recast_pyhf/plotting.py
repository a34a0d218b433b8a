"""CLs against mu with the expected band, one picture per point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a step container

import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)


def brazil(fit: dict[str, Any], target: Path) -> None:
    scan = fit["scan"]
    mu = scan["mu"]
    band = list(zip(*scan["cls_exp"], strict=True))

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    ax.fill_between(mu, band[0], band[4], color="#f5d000", label=r"expected $\pm 2\sigma$")
    ax.fill_between(mu, band[1], band[3], color="#2ca02c", label=r"expected $\pm 1\sigma$")
    ax.plot(mu, band[2], "k--", label="expected")
    ax.plot(mu, scan["cls_obs"], "k-", marker=".", label="observed")
    ax.axhline(0.05, color="#d62728", label="CL = 95 %")
    ax.set_xlabel(r"signal strength $\mu$")
    ax.set_ylabel(r"CL$_s$")
    ax.set_title(fit["point"])
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
