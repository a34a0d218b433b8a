"""Checks of the fast fit path against plain pyhf, run inside the step environment
(pyhf and JAX are not in the platform's): python fastfit_probe.py CHECK ARGS...

Prints one JSON document with the numbers both ways, for the tests to compare.
"""

import copy
import json
import sys
import warnings

from recast_pyhf import cli

cli.single_threaded()

import jsonpatch  # noqa: E402
import numpy as np  # noqa: E402
import pyhf  # noqa: E402
from recast_pyhf import asymptotics, compiled, fitting, limits, newton  # noqa: E402

warnings.simplefilter("ignore", RuntimeWarning)


def reference(spec, backend, limits):
    """CLs at mu = 1 (and the limits) from plain pyhf on ``backend``."""
    pyhf.set_backend(backend, "scipy")
    model, data = compiled.build(copy.deepcopy(spec))
    observed, expected = pyhf.infer.hypotest(
        1.0, data, model, test_stat="qtilde", return_expected_set=True
    )
    numbers = {"cls_obs": float(observed), "cls_exp": [float(v) for v in expected]}
    if limits:
        limit_obs, limit_exp = pyhf.infer.intervals.upper_limits.toms748_scan(
            data, model, 0.05, 10.0, level=0.05, rtol=1e-6, test_stat="qtilde"
        )
        numbers["mu_up_obs"] = float(limit_obs)
        numbers["mu_up_exp"] = [float(v) for v in limit_exp]
    return numbers


def sources(specs):
    return [lambda spec=spec: copy.deepcopy(spec) for spec in specs]


def fast(specs):
    return fitting.fit_specs(sources(specs), "jax", limits=True)


def patched(bkgonly_path, patchset_path, names):
    with open(bkgonly_path) as handle:
        bkgonly = json.load(handle)
    with open(patchset_path) as handle:
        patches = {
            p["metadata"]["name"]: p["patch"] for p in json.load(handle)["patches"]
        }
    return [jsonpatch.apply_patch(bkgonly, patches[name]) for name in names]


def fits(specs):
    """Each patch's fits both ways: in XLA (newton) and with pyhf's SLSQP.

    The free fits and fits at fixed mu on the data and on the Asimov data,
    each from pyhf's starting values: twice the NLL and the parameters.
    """
    pyhf.set_backend("numpy")
    survey = compiled.Survey()
    prepared = [survey.prepare(source(), source) for source in sources(specs)]
    pyhf.set_backend("jax", "scipy")
    structures = compiled.Structures(survey)
    found = []
    for point in prepared:
        fitter = compiled.Fitter(structures.lookup(point), point)
        data = point.data
        background, _ = fitter.fit(data, mu=0.0)
        asimov = np.asarray(fitter.expected_data(background))
        for label, dataset in (("data", np.asarray(data)), ("asimov", asimov)):
            for mu in (None, 0.0, 0.5, 1.0, 2.5):
                init, fixed = list(fitter.init), list(fitter.fixed)
                if mu is not None:
                    init[fitter.poi], fixed[fitter.poi] = mu, True
                xla = newton.run(
                    fitter.structure.newton_fit,
                    init,
                    fixed,
                    fitter.bounds,
                    dataset,
                    fitter.arrays,
                )
                pars, twice_nll = fitter.slsqp(dataset, init, fixed)
                found.append(
                    {
                        "data": label,
                        "mu": mu,
                        "converged": xla.converged,
                        "iterations": xla.iterations,
                        "newton": [xla.twice_nll, xla.pars.tolist()],
                        "slsqp": [twice_nll, pars.tolist()],
                    }
                )
    return found


def fallback(specs, iterations):
    """The fit step with Newton allowed only ``iterations`` steps a fit."""
    newton.MAX_ITERATIONS = iterations
    points, structures = fast(specs)
    return {"fast": points, "structures": len(structures.known)}


class Analytic:
    """CLs of a counting experiment with sqrt(q_A) = mu / sigma, exactly.

    The observed test statistic is the Asimov one of a shifted mu, so every
    limit has a closed form to check the root finding against.
    """

    def __init__(self, sigma, shift):
        self.sigma, self.shift = sigma, shift
        self.fits = self.slsqp_fits = 0

    def expected(self, mu):
        self.fits += 1
        return asymptotics.cls_expected(mu / self.sigma)

    def observed(self, mu):
        self.fits += 1
        sqrtq = max(mu - self.shift, 0.0) / self.sigma
        return asymptotics.cls_observed(sqrtq, mu / self.sigma)


def analytic_limits(sigma, shift):
    calculator = Analytic(sigma, shift)
    curves = limits.Curves(calculator, 0.0, 10.0)
    curves.observed(1.0)
    observed, expected, message = curves.limits()
    exact = [limits.asimov_target(n) * sigma for n in asymptotics.SIGMAS]
    return {
        "observed": observed,
        "expected": expected,
        "exact_expected": exact,
        "observed_cls_at_limit": (
            None if observed is None else Analytic(sigma, shift).observed(observed)
        ),
        "evaluations": calculator.fits,
        "message": message,
    }


def main():
    if sys.argv[1] == "limits":
        json.dump(analytic_limits(float(sys.argv[2]), float(sys.argv[3])), sys.stdout)
        return
    if sys.argv[1] == "fits":
        json.dump(fits(patched(*sys.argv[2:4], sys.argv[4:])), sys.stdout)
        return
    if sys.argv[1] == "fallback":
        specs = patched(*sys.argv[3:5], sys.argv[5:])
        json.dump(fallback(specs, int(sys.argv[2])), sys.stdout)
        return
    _, bkgonly, patchset, limits, backends, *names = sys.argv[1:]
    specs = patched(bkgonly, patchset, names)
    points, structures = fast(specs)
    document = {
        "fast": points,
        "structures": len(structures.known),
        "compiles": structures.compiles,
        "fits": [s.compiles for s in structures.known],
    }
    # pyhf's toms748_scan fails on the JAX backend (it keys a cache by array):
    # limits come from numpy only, for the first point (they are slow).
    for backend in backends.split(","):
        document[backend] = [
            reference(
                spec, backend, limits == "limits" and backend == "numpy" and i == 0
            )
            for i, spec in enumerate(specs)
        ]
    json.dump(document, sys.stdout)


if __name__ == "__main__":
    main()
