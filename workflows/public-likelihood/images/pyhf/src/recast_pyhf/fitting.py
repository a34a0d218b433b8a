"""CLs at mu = 1 and 95 % CL upper limits on mu, with the fit's own health check.

All numbers use pyhf's asymptotic calculator with the qtilde test statistic.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyhf
import scipy.optimize

from . import StepError

# Problems of the workspace itself, which the requester can see and fix.
PYHF_INPUT_ERRORS = (
    pyhf.exceptions.InvalidSpecification,
    pyhf.exceptions.InvalidModel,
    pyhf.exceptions.InvalidModifier,
    pyhf.exceptions.InvalidPdfData,
    pyhf.exceptions.UnspecifiedPOI,
)
LEVEL = 0.05
MAX_HALVINGS = 20
PLOT_POINTS = 12
# Tight enough that two computations of the same limit agree to about 1e-6.
LIMIT_RTOL = 1e-7
LIMIT_ATOL = 1e-10


def build(spec: dict[str, Any]) -> tuple[pyhf.pdf.Model, Any]:
    workspace = pyhf.Workspace(spec)
    model = workspace.model(
        modifier_settings={
            "normsys": {"interpcode": "code4"},
            "histosys": {"interpcode": "code4p"},
        }
    )
    return model, workspace.data(model)


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def fit_health(model: pyhf.pdf.Model, data: Any) -> tuple[str, str]:
    """Return (status, message) of the unconditional maximum-likelihood fit.

    A fit that fails, returns a non-finite value or leaves every parameter at
    its starting point is not trusted, and the result says so.
    """
    init = np.asarray(model.config.suggested_init(), dtype=float)
    try:
        bestfit, result = pyhf.infer.mle.fit(data, model, return_result_obj=True)
    except pyhf.exceptions.FailedMinimization as exc:
        return "failed", f"the maximum-likelihood fit did not converge: {exc}"

    bestfit = np.asarray(bestfit, dtype=float)
    if not np.all(np.isfinite(bestfit)) or not math.isfinite(float(result.fun)):
        return "failed", "the maximum-likelihood fit returned NaN or infinity"
    if np.allclose(bestfit, init, rtol=0.0, atol=1e-12):
        return "failed", "the maximum-likelihood fit ended where it started"
    return "ok", "fit converged"


def cls_at(mu: float, model: pyhf.pdf.Model, data: Any) -> tuple[float, list[float]]:
    observed, expected = pyhf.infer.hypotest(
        mu, data, model, test_stat="qtilde", return_expected_set=True
    )
    return float(observed), [float(v) for v in expected]


class CLsCurve:
    """CLs (observed, then the five expected values) as a function of mu, cached."""

    def __init__(self, model: pyhf.pdf.Model, data: Any) -> None:
        self.model, self.data = model, data
        self.values: dict[float, tuple[float, list[float]]] = {}

    def __call__(self, mu: float) -> list[float]:
        mu = float(mu)
        if mu not in self.values:
            self.values[mu] = cls_at(mu, self.model, self.data)
        observed, expected = self.values[mu]
        return [observed, *expected]

    def bracket(self, index: int) -> tuple[float, float]:
        """The closest evaluated mu on each side of the crossing of curve ``index``."""
        above = [mu for mu in self.values if self(mu)[index] >= LEVEL]
        below = [mu for mu in self.values if self(mu)[index] < LEVEL]
        return max(above), min(below)

    def crossing(self, index: int) -> float:
        low, high = self.bracket(index)
        return float(
            scipy.optimize.toms748(
                lambda mu: self(mu)[index] - LEVEL,
                low,
                high,
                k=2,
                xtol=LIMIT_ATOL,
                rtol=LIMIT_RTOL,
            )
        )


def limits(curve: CLsCurve) -> tuple[float | None, list[float | None], str]:
    """Return the observed and expected upper limits, and a message if none was found.

    pyhf cannot test a mu outside the POI's bounds, so a limit beyond the upper
    bound is reported as missing, with the reason, rather than searched for.
    """
    config = curve.model.config
    low, high = (float(b) for b in config.suggested_bounds()[config.poi_index])
    if max(curve(high)) >= LEVEL:
        return (
            None,
            [None] * 5,
            f"CLs is still above {LEVEL} at the upper bound of the POI, mu = {high:g}",
        )

    # CLs is undefined at mu = 0: start just above the lower bound, and go lower
    # only while some curve is already below the level there.
    bottom = max(low, 0.0) + 1e-3 * (high - max(low, 0.0))
    for _ in range(MAX_HALVINGS):
        if min(curve(bottom)) >= LEVEL:
            break
        bottom /= 2
    else:
        return None, [None] * 5, f"CLs is already below {LEVEL} at mu = {bottom:g}"

    observed, *expected = (curve.crossing(index) for index in range(6))
    return observed, list(expected), ""


def plot_grid(curve: CLsCurve, limits_found: list[float]) -> None:
    """Evenly spaced points for the CLs-against-mu picture, up to past the limits."""
    config = curve.model.config
    high = float(config.suggested_bounds()[config.poi_index][1])
    top = min(high, 1.25 * max(limits_found, default=high))
    for mu in np.linspace(top / PLOT_POINTS, top, PLOT_POINTS):
        curve(float(mu))


def scan_document(
    evaluations: dict[float, tuple[float, list[float]]],
) -> dict[str, Any]:
    mus = sorted(evaluations)
    return {
        "mu": mus,
        "cls_obs": [evaluations[mu][0] for mu in mus],
        "cls_exp": [evaluations[mu][1] for mu in mus],
    }


def fit_point(spec: dict[str, Any]) -> dict[str, Any]:
    model, data = build(spec)
    status, message = fit_health(model, data)
    curve = CLsCurve(model, data)
    cls_obs, *cls_exp = curve(1.0)
    mu_up_obs, mu_up_exp, limit_message = limits(curve)
    plot_grid(curve, [v for v in [mu_up_obs, *mu_up_exp] if v is not None])

    if status == "ok" and not finite([cls_obs, *cls_exp]):
        status, message = "failed", "CLs is NaN or infinite"
    if status == "ok" and limit_message:
        status, message = "no_limit", limit_message

    return {
        "poi": model.config.poi_name,
        "fit_status": status,
        "fit_message": message,
        "cls_obs": cls_obs,
        "cls_exp": list(cls_exp),
        "mu_up_obs": mu_up_obs,
        "mu_up_exp": mu_up_exp,
        "scan": scan_document(curve.values),
        "n_parameters": len(model.config.suggested_init()),
        "n_bins": int(sum(model.config.channel_nbins.values())),
    }


def run(manifest_path: Path, outdir: Path, backend: str = "jax") -> Path:
    pyhf.set_backend(backend, "scipy")
    manifest = json.loads(manifest_path.read_text())
    fits = []
    for point in manifest["points"]:
        spec = json.loads(Path(point["workspace"]).read_text())
        with warnings.catch_warnings():
            # A fit near a bound warns on every iteration; the health check reports it.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fit = fit_point(spec)
            except PYHF_INPUT_ERRORS as exc:
                raise StepError(f"{point['point']}: {exc}") from None
        fits.append({"point": point["point"], "metadata": point["metadata"], **fit})

    target = outdir / "fits.json"
    outdir.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps(
            {"pyhf_version": pyhf.__version__, "backend": backend, "fits": fits},
            indent=1,
        )
    )
    return target
