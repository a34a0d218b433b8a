"""The portal's plots, drawn on the server as SVG with matplotlib: CLs against mu
for one point (the "Brazil" plot) and the exclusion contour of a scan over two
model parameters. No Django models here: the callers hand over the numbers.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

CLS_LEVEL = 0.05
BIGGEST_SCAN_FILE = 20 * 1024 * 1024
GREEN, YELLOW, RED = "#2ca02c", "#f5d000", "#d62728"


def pyplot() -> Any:
    """matplotlib's pyplot, imported on first use: importing it (and building
    its font cache the first time) takes seconds, which no page but a plot
    should wait for."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib import pyplot as plt

    return plt


def literal(text: str) -> str:
    """Text shown as it is: matplotlib reads $...$ as mathematics."""
    return text.replace("$", r"\$")


def to_svg(figure: Figure) -> str:
    plt = pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "recast"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    # The page's policy forbids inline styles; matplotlib's one default rule
    # (rounded line joins) is not worth an exception.
    return re.sub(r"<style.*?</style>", "", buffer.getvalue(), flags=re.S)


def point_scan(archive: Path, point: str) -> dict[str, Any] | None:
    """The CLs scan over mu of ``point`` that a step published in the run's
    archive: a ``scan`` with ``mu``, ``cls_obs`` and ``cls_exp`` (five values
    per mu), in a document's ``fits`` list or at its top. None when no step
    published one (a workflow that computes CLs at mu = 1 only)."""
    for path in sorted((archive / "outputs").glob("*/*.json")):
        if path.stat().st_size > BIGGEST_SCAN_FILE:
            continue
        try:
            document = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        for candidate in scan_candidates(document):
            if candidate.get("point", point) == point and valid_scan(
                candidate.get("scan")
            ):
                return dict(candidate)
    return None


def scan_candidates(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    fits = document.get("fits")
    listed = [f for f in fits if isinstance(f, dict)] if isinstance(fits, list) else []
    return [*listed, document]


def valid_scan(scan: Any) -> bool:
    if not isinstance(scan, dict):
        return False
    mu, obs, exp = scan.get("mu"), scan.get("cls_obs"), scan.get("cls_exp")
    return (
        isinstance(mu, list)
        and len(mu) >= 2
        and isinstance(obs, list)
        and isinstance(exp, list)
        and len(mu) == len(obs) == len(exp)
        and all(isinstance(e, list) and len(e) == 5 for e in exp)
    )


def brazil(fit: dict[str, Any], title: str) -> str:
    """CLs against mu: observed, expected with its 1 and 2 sigma bands, the
    CLs = 0.05 line and the upper limits where they cross it."""
    scan = fit["scan"]
    expected = [v for v in fit.get("mu_up_exp") or [] if v is not None]
    limits = [v for v in [fit.get("mu_up_obs"), *expected] if v is not None]
    top = 1.25 * max(limits) if limits else max(scan["mu"])
    shown = sorted(
        (m, o, e)
        for m, o, e in zip(scan["mu"], scan["cls_obs"], scan["cls_exp"], strict=True)
        if m <= top * 1.0001
    )
    mu = [row[0] for row in shown]
    band = [[row[2][i] for row in shown] for i in range(5)]

    figure, axes = pyplot().subplots(figsize=(6.4, 4.4))
    axes.fill_between(mu, band[0], band[4], color=YELLOW, label="expected ±2σ")
    axes.fill_between(mu, band[1], band[3], color=GREEN, label="expected ±1σ")
    axes.plot(mu, band[2], "k--", label="expected")
    axes.plot(mu, [row[1] for row in shown], "k-", marker=".", label="observed")
    axes.axhline(CLS_LEVEL, color=RED, label="CLs = 0.05")
    if fit.get("mu_up_obs"):
        axes.axvline(fit["mu_up_obs"], color="k", linewidth=0.8, linestyle=":")
    axes.set_xlabel("signal strength μ")
    axes.set_ylabel("CLs")
    axes.set_title(literal(title))
    axes.set_xlim(0, top)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    return to_svg(figure)


@dataclass
class ContourPoint:
    x: float
    y: float
    cls_obs: float
    cls_exp: list[float]


def numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def contour_points(
    rows: list[dict[str, Any]], labels: tuple[str, str]
) -> list[ContourPoint]:
    """The points with both parameters and every CLs value known."""
    points = []
    for row in rows:
        parameters = row.get("model_parameters") or {}
        x, y = numeric(parameters.get(labels[0])), numeric(parameters.get(labels[1]))
        observed = numeric(row.get("cls_obs"))
        expected = [numeric(v) for v in row.get("cls_exp") or []]
        if x is None or y is None or observed is None or len(expected) != 5:
            continue
        if any(v is None for v in expected):
            continue
        points.append(ContourPoint(x, y, observed, [v or 0.0 for v in expected]))
    return points


def parameter_labels(rows: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first two model parameters that are numbers in every point."""
    names: list[str] = []
    for row in rows:
        for name, value in (row.get("model_parameters") or {}).items():
            if name not in names and numeric(value) is not None:
                names.append(name)
    usable = [
        name
        for name in names
        if all(
            numeric((row.get("model_parameters") or {}).get(name)) is not None
            for row in rows
        )
    ]
    return (usable[0], usable[1]) if len(usable) >= 2 else None


class NoContour(Exception):
    """Why a scan's points cannot give a contour (too few, all on a line)."""


def triangulation(points: list[ContourPoint]) -> Triangulation:
    if len(points) < 3:
        raise NoContour(
            f"an exclusion contour needs at least three finished points; "
            f"this scan has {len(points)}"
        )
    from matplotlib.tri import Triangulation

    try:
        return Triangulation([p.x for p in points], [p.y for p in points])
    except (RuntimeError, ValueError):
        raise NoContour(
            "the points lie on one line, so no contour can be drawn between them"
        ) from None


def contour_data(
    rows: list[dict[str, Any]],
) -> tuple[tuple[str, str], list[ContourPoint], Triangulation]:
    """The two parameters, the usable points and their triangulation; raise
    NoContour when the points cannot give a contour."""
    labels = parameter_labels(rows)
    if labels is None:
        raise NoContour("the points need two numeric model parameters for a contour")
    points = contour_points(rows, labels)
    return labels, points, triangulation(points)


def contour(rows: list[dict[str, Any]], title: str) -> str:
    """The 95 % CL exclusion contour over two model parameters, observed and
    expected with the ±1 sigma band, interpolated linearly between the points'
    CLs; raise NoContour when the points cannot give one."""
    labels, points, mesh = contour_data(rows)

    figure, axes = pyplot().subplots(figsize=(6.4, 4.8))
    # The band is where the -1 and +1 sigma expectations lie on either side
    # of the level: their product with the level taken off is negative there.
    inside = [(p.cls_exp[1] - CLS_LEVEL) * (p.cls_exp[3] - CLS_LEVEL) for p in points]
    if min(inside) < 0:
        axes.tricontourf(mesh, inside, levels=[min(inside), 0], colors=[YELLOW])
    axes.fill([], [], color=YELLOW, label="expected ±1σ")
    draw_level(axes, mesh, [p.cls_exp[2] for p in points], "k", "--", "expected")
    draw_level(axes, mesh, [p.cls_obs for p in points], RED, "-", "observed")
    excluded = [p for p in points if p.cls_obs < CLS_LEVEL]
    allowed = [p for p in points if p.cls_obs >= CLS_LEVEL]
    if excluded:
        axes.scatter(
            [p.x for p in excluded],
            [p.y for p in excluded],
            color="k",
            label="excluded (observed)",
            zorder=3,
        )
    if allowed:
        axes.scatter(
            [p.x for p in allowed],
            [p.y for p in allowed],
            facecolors="none",
            edgecolors="k",
            label="not excluded",
            zorder=3,
        )
    pad_axes(axes, points)
    axes.set_xlabel(literal(labels[0]))
    axes.set_ylabel(literal(labels[1]))
    axes.set_title(literal(title))
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return to_svg(figure)


def pad_axes(axes: Any, points: list[ContourPoint]) -> None:
    """Room around the outermost points, so their markers are not cut."""
    for values, limits in (
        ([p.x for p in points], axes.set_xlim),
        ([p.y for p in points], axes.set_ylim),
    ):
        low, high = min(values), max(values)
        pad = 0.06 * (high - low or 1.0)
        limits(low - pad, high + pad)


def draw_level(
    axes: Any,
    mesh: Triangulation,
    values: list[float],
    colour: str,
    style: str,
    label: str,
) -> None:
    if min(values) < CLS_LEVEL < max(values):
        axes.tricontour(
            mesh, values, levels=[CLS_LEVEL], colors=[colour], linestyles=[style]
        )
    axes.plot([], [], color=colour, linestyle=style, label=f"{label} (CLs = 0.05)")
