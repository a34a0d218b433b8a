"""Checks of the fast fit path against plain pyhf, run inside the step environment
(pyhf and JAX are not in the platform's): python fastfit_probe.py CHECK ARGS...

Prints one JSON document with the numbers both ways, for the tests to compare.
"""

import json
import sys
import warnings

from recast_pyhf import cli

cli.single_threaded()

import jsonpatch  # noqa: E402
import pyhf  # noqa: E402
from recast_pyhf import compiled, fitting  # noqa: E402

warnings.simplefilter("ignore", RuntimeWarning)


def reference(spec, backend, limits):
    """CLs at mu = 1 (and the limits) from plain pyhf on ``backend``."""
    pyhf.set_backend(backend, "scipy")
    model, data = compiled.build(spec)
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


def fast(specs):
    pyhf.set_backend("jax", "scipy")
    structures = compiled.Structures()
    points = [fitting.fit_point(spec, structures) for spec in specs]
    return points, structures


def patched(bkgonly_path, patchset_path, names):
    with open(bkgonly_path) as handle:
        bkgonly = json.load(handle)
    with open(patchset_path) as handle:
        patches = {
            p["metadata"]["name"]: p["patch"] for p in json.load(handle)["patches"]
        }
    return [jsonpatch.apply_patch(bkgonly, patches[name]) for name in names]


def main():
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
