"""CLs at mu = 1 and 95 % CL upper limits on mu for every point of a batch.

All numbers use pyhf's asymptotic calculator with the qtilde test statistic.
The fast path (``compiled`` and ``asymptotics``) serves every point whose model
structure it has compiled, in this one process; a structure it cannot serve
goes through plain pyhf, and each point records which path it took. A point
that cannot be fitted becomes a point with ``fit_status: failed`` and the
reason; the others carry on.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyhf

from . import StepError
from .asymptotics import Calculator, FastCalculator, PyhfCalculator
from .compiled import (
    FitFailed,
    Fitter,
    Prepared,
    Structures,
    Survey,
    Unsupported,
    build,
)
from .limits import LIMIT_RTOL, Curves, finite

logger = logging.getLogger(__name__)

# Problems of the workspace itself, which the requester can see and fix.
PYHF_INPUT_ERRORS = (
    pyhf.exceptions.InvalidSpecification,
    pyhf.exceptions.InvalidModel,
    pyhf.exceptions.InvalidModifier,
    pyhf.exceptions.InvalidPdfData,
    pyhf.exceptions.UnspecifiedPOI,
)


# Where a workspace's text may hold NaN or infinity: the words Python's json
# reads as such, and exponents of three digits or more (1e999 overflows).
NON_FINITE_TEXT = re.compile(rb"NaN|Infinity|[eE]\+?\d{3,}")

# How each backend's fits are made, for the result's software section.
OPTIMIZERS = {
    "jax": "bounded Gauss-Newton inside XLA, scipy SLSQP where that does not converge",
    "numpy": "the scipy optimizer",
}
# The fit message of a point whose request asked for CLs at mu = 1 only.
CLS_ONLY = "fit converged; upper limits not requested"


class BadPoint(Exception):
    """This point cannot be fitted; the message says why."""


def non_finite(spec: dict[str, Any]) -> str | None:
    """Name the first sample or modifier whose numbers contain NaN or infinity."""
    for channel in spec.get("channels", []):
        for sample in channel.get("samples", []):
            where = f"sample '{sample.get('name')}' of channel '{channel.get('name')}'"
            if not all_finite(sample.get("data")):
                return f"the bin contents of {where} contain NaN or infinity"
            for modifier in sample.get("modifiers", []):
                if not all_finite(modifier.get("data")):
                    return (
                        f"the data of modifier '{modifier.get('name')}' "
                        f"({modifier.get('type')}) of {where} contain NaN or infinity"
                    )
    return None


def all_finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def health(bestfit: np.ndarray, twice_nll: float, init: list[float]) -> None:
    """Refuse a maximum-likelihood fit that is not finite or never moved."""
    if not np.all(np.isfinite(bestfit)) or not math.isfinite(twice_nll):
        raise BadPoint("the maximum-likelihood fit returned NaN or infinity")
    if np.allclose(bestfit, np.asarray(init, dtype=float), rtol=0.0, atol=1e-12):
        raise BadPoint("the maximum-likelihood fit ended where it started")


def fast_calculator(fitter: Fitter, data: Any) -> FastCalculator:
    calculator = FastCalculator(fitter, data)
    bestfit, twice_nll = calculator.free_fit
    health(bestfit, twice_nll, fitter.init)
    return calculator


def pyhf_calculator(model: pyhf.pdf.Model, data: Any) -> PyhfCalculator:
    try:
        bestfit, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    except pyhf.exceptions.FailedMinimization as exc:
        raise BadPoint(f"the maximum-likelihood fit did not converge: {exc}") from None
    health(np.asarray(bestfit), float(twice_nll), model.config.suggested_init())
    return PyhfCalculator(model, data)


def calculator_for(
    prepared: Prepared, structures: Structures
) -> tuple[Calculator, str, str]:
    """The point's calculator, the path taken and why (for plain pyhf)."""
    try:
        structure = structures.lookup(prepared)
    except Unsupported as exc:
        model, data = build(prepared.source())
        return pyhf_calculator(model, data), "pyhf", str(exc)
    return fast_calculator(Fitter(structure, prepared), prepared.data), "fast", ""


def upper_limits(
    curves: Curves, limits: bool
) -> tuple[float | None, list[float | None], str]:
    """The limits and the plot grid past them; Nones and no message when the
    request asked for CLs at mu = 1 only (the limits are most of the fits)."""
    if not limits:
        return None, [None] * 5, ""
    mu_up_obs, mu_up_exp, limit_message = curves.limits()
    curves.plot_grid([v for v in [mu_up_obs, *mu_up_exp] if v is not None])
    return mu_up_obs, mu_up_exp, limit_message


def fit_point(
    prepared: Prepared, structures: Structures, limits: bool = True
) -> dict[str, Any]:
    calculator, path, reason = calculator_for(prepared, structures)
    config = prepared.config
    low, high = config.bounds[config.poi_index]

    curves = Curves(calculator, low, high)
    cls_obs, cls_exp = curves.observed(1.0), curves.expected(1.0)
    mu_up_obs, mu_up_exp, limit_message = upper_limits(curves, limits)

    status, message = "ok", "fit converged" if limits else CLS_ONLY
    if not finite([cls_obs, *cls_exp]):
        status, message = "failed", "CLs is NaN or infinite"
    elif limit_message:
        status, message = "no_limit", limit_message
    return {
        "limits": "computed" if limits else "not_requested",
        "poi": config.poi_name,
        "fit_status": status,
        "fit_message": message,
        "fit_path": path,
        "fit_path_reason": reason,
        "n_fits": calculator.fits,
        "n_slsqp_fits": calculator.slsqp_fits,
        "cls_obs": cls_obs,
        "cls_exp": list(cls_exp),
        "mu_up_obs": mu_up_obs,
        "mu_up_exp": mu_up_exp,
        "scan": curves.scan(),
        "n_parameters": len(config.init),
        "n_bins": config.n_bins,
    }


def failed_point(message: str, limits: bool = True) -> dict[str, Any]:
    return {
        "limits": "computed" if limits else "not_requested",
        "poi": None,
        "fit_status": "failed",
        "fit_message": message,
        "fit_path": None,
        "fit_path_reason": "",
        "n_fits": 0,
        "n_slsqp_fits": 0,
        "cls_obs": None,
        "cls_exp": [None] * 5,
        "mu_up_obs": None,
        "mu_up_exp": [None] * 5,
        "scan": {"mu": [], "cls_obs": [], "cls_exp": []},
        "n_parameters": None,
        "n_bins": None,
    }


def guarded(work: Callable[[], Any], where: str) -> Any:
    """``work()``, or the message saying why it failed: never an exception.

    ``where`` names the point in the log of an unexpected failure."""
    try:
        with warnings.catch_warnings():
            # A fit near a bound warns on every iteration; the health check reports it.
            warnings.simplefilter("ignore", RuntimeWarning)
            return work()
    except (BadPoint, FitFailed) as exc:
        return Failure(str(exc))
    except PYHF_INPUT_ERRORS as exc:
        return Failure(f"the workspace is not a valid model: {exc}")
    except pyhf.exceptions.FailedMinimization as exc:
        return Failure(f"a fit did not converge: {exc}")
    except Exception as exc:
        # Whatever else one point provokes stays with that point: a batch carries on.
        logger.exception("%s failed", where)
        return Failure(f"{type(exc).__name__}: {exc}")


class Failure(str):
    """Why a point could not be prepared or fitted."""


def prepare(source: Callable[[], dict[str, Any]], survey: Survey) -> Prepared:
    return survey.prepare(source(), source)


def reader(path: Path) -> Callable[[], dict[str, Any]]:
    """The workspace at ``path``, read anew at each call; BadPoint where it
    holds NaN or infinity."""

    def read() -> dict[str, Any]:
        text = path.read_bytes()
        spec = json.loads(text)
        # Walking a megabyte workspace number by number cost more than its
        # fit; JSON can only spell a non-finite number as a word or as a
        # number past a double's range, which a search of the text finds.
        if NON_FINITE_TEXT.search(text):
            problem = non_finite(spec)
            if problem:
                raise BadPoint(problem)
        return spec

    return read


def fit_specs(
    sources: list[Callable[[], dict[str, Any]]],
    backend: str,
    limits: bool,
    names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], Structures]:
    """Every point's fit document (or failed point), in order; ``names``
    name the points in the log (else their place in the batch).

    First every model is built on numpy (``Survey``), then the fits run on
    ``backend``; the numpy models are gone before the backend changes, since
    pyhf would rebuild every live model's tensors for the new backend.
    """
    names = names or [f"point {i + 1} of the batch" for i in range(len(sources))]
    survey = Survey(fast=backend == "jax")
    pyhf.set_backend("numpy")
    seconds, prepared = [], []
    for source, name in zip(sources, names, strict=True):
        started = time.monotonic()
        prepared.append(guarded(partial(prepare, source, survey), name))
        seconds.append(time.monotonic() - started)
    gc.collect()

    pyhf.set_backend(backend, "scipy")
    structures = Structures(survey)
    if backend != "jax":
        structures.refuse_all(f"the {backend} backend has no compiled fast path")
    fits = []
    for point, spent, name in zip(prepared, seconds, names, strict=True):
        started = time.monotonic()
        fit = point
        if isinstance(point, Prepared):
            fit = guarded(partial(fit_point, point, structures, limits), name)
            # The numbers are the bulk of a prepared point, and its fit is done.
            point.numbers = None
        if isinstance(fit, Failure):
            fit = failed_point(str(fit), limits)
        fit["seconds"] = round(spent + time.monotonic() - started, 3)
        fits.append(fit)
    return fits, structures


def read_manifest(manifest_path: Path) -> list[dict[str, Any]]:
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise StepError(f"{manifest_path.name}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepError(f"{manifest_path.name}: not valid JSON ({exc})") from None
    points = manifest.get("points") if isinstance(manifest, dict) else None
    if not isinstance(points, list) or not points:
        raise StepError(f"{manifest_path.name}: no 'points' to fit")
    for index, point in enumerate(points):
        if not isinstance(point, dict) or not {"point", "workspace"} <= point.keys():
            raise StepError(
                f"{manifest_path.name}: point {index} needs 'point' and 'workspace'"
            )
        # A relative path is the patch step's own (beside the manifest).
        point["workspace"] = str(manifest_path.parent / point["workspace"])
    return points


def run(
    manifest_path: Path, outdir: Path, backend: str = "jax", limits: bool = True
) -> Path:
    """Fit every point; write ``fits.json`` and ``points/<point>.json`` for each.

    The fast path needs JAX: with ``backend="numpy"`` every point goes through
    plain pyhf, as the reference the fast path is checked against. With
    ``limits=False`` a point gets CLs at mu = 1 and its expected band only.
    """
    points = read_manifest(manifest_path)
    # What the imports made (JAX's and pyhf's modules) never becomes garbage:
    # leave it out of the many collections that building models triggers.
    gc.freeze()
    found, structures = fit_specs(
        [reader(Path(point["workspace"])) for point in points],
        backend,
        limits,
        [f"point {point['point']}" for point in points],
    )
    fits = []
    for point, fit in zip(points, found, strict=True):
        fits.append(
            {"point": point["point"], "metadata": point.get("metadata", {}), **fit}
        )
        logger.info(
            "point %s: %s in %.1f s", point["point"], fit["fit_status"], fit["seconds"]
        )

    document = {
        "pyhf_version": pyhf.__version__,
        "backend": backend,
        "optimizer": OPTIMIZERS.get(backend, OPTIMIZERS["numpy"]),
        "limit_rtol": LIMIT_RTOL,
        "limits": limits,
        "structures": len(structures.known),
        "compiles": structures.compiles,
        "fits": fits,
    }
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "points").mkdir(exist_ok=True)
    for fit in fits:
        one = {**{k: v for k, v in document.items() if k != "fits"}, "fits": [fit]}
        (outdir / "points" / f"{fit['point']}.json").write_text(
            json.dumps(one, indent=1)
        )
    target = outdir / "fits.json"
    target.write_text(json.dumps(document, indent=1))
    return target
