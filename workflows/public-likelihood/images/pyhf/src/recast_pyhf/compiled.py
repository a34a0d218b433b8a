"""One compiled likelihood per model structure, serving every patch of that structure.

pyhf's JAX backend compiles the objective once per model object, which costs
more than the fits themselves when a scan builds one model per signal point.
Here the arrays that hold a model's numbers (nominal rates, interpolation
deltas, constraint widths) become inputs of a function compiled once; pyhf's
own ``logpdf`` and ``expected_data`` still do the computing, on a template
model whose arrays are swapped for the inputs while JAX traces it. So every
modifier and interpolation code pyhf supports is covered.

Which arrays carry numbers and which carry structure (indices, masks) is found
by building the model a second time from the same workspace with every bin
content and modifier value scaled by a random factor: the JAX arrays that change
are inputs, everything else is structure and must be identical, value for
value, in any patch the compiled function serves. A structure that does not
pass a self-check against pyhf's own numbers is refused, and its points go the
plain pyhf way.
"""

from __future__ import annotations

import copy
import hashlib
import random
import types
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import scipy.optimize

from . import newton

MODIFIER_SETTINGS = {
    "normsys": {"interpcode": "code4"},
    "histosys": {"interpcode": "code4p"},
}
SCALARS = (bool, int, float, str, type(None), np.generic)
ARRAYS = (np.ndarray, jax.Array)
Path = tuple[Any, ...]
# How closely the compiled function must reproduce pyhf's own evaluation.
SELF_CHECK_RTOL = 1e-9


class Unsupported(Exception):
    """This structure cannot be served by a compiled function; use plain pyhf."""


class FitFailed(Exception):
    """The optimizer did not converge, as pyhf's FailedMinimization."""


def build(spec: dict[str, Any]) -> tuple[pyhf.pdf.Model, Any]:
    """The model and data of a workspace already validated by the patch step."""
    workspace = pyhf.Workspace(spec, validate=False)
    model = workspace.model(modifier_settings=MODIFIER_SETTINGS, validate=False)
    return model, workspace.data(model)


def scaled(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    """The same workspace with every bin content and modifier value scaled a bit."""
    rng = random.Random(seed)
    spec = copy.deepcopy(spec)

    def scale(values: Any) -> Any:
        if isinstance(values, list):
            return [scale(v) for v in values]
        if isinstance(values, int | float) and not isinstance(values, bool):
            return values * (1.0 + 0.1 * rng.random())
        return values

    for channel in spec["channels"]:
        for sample in channel["samples"]:
            sample["data"] = scale(sample["data"])
            for modifier in sample.get("modifiers", []):
                data = modifier.get("data")
                if isinstance(data, dict):
                    modifier["data"] = {k: scale(v) for k, v in data.items()}
                else:
                    modifier["data"] = scale(data)
    return spec


def leaves(root: Any) -> list[tuple[Path, Any]]:
    """Every array and scalar reachable from ``root``, with its attribute path."""
    found: list[tuple[Path, Any]] = []
    seen: set[int] = set()
    skipped = (types.ModuleType, types.FunctionType, types.MethodType, type)

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, ARRAYS + SCALARS):
            found.append((path, node))
            return
        if id(node) in seen or isinstance(node, skipped):
            return
        seen.add(id(node))
        for key, child in children(node):
            # Models keep their raw workspace document for reference only; its
            # numbers reach the likelihood through the arrays built from it.
            if key != "spec":
                walk(child, (*path, key))

    walk(root, ())
    return found


def children(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list | tuple):
        yield from enumerate(node)
    elif hasattr(node, "__dict__"):
        attributes = vars(node)
        for key, value in attributes.items():
            # pyhf keeps ``_name`` (lists, numpy) to build the tensor ``name``
            # from whenever the backend changes; only the tensor is computed with.
            if not (key.startswith("_") and key[1:] in attributes):
                yield key, value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, ARRAYS) or isinstance(b, ARRAYS):
        left, right = np.asarray(a), np.asarray(b)
        return (
            left.shape == right.shape
            and left.dtype == right.dtype
            and bool(np.array_equal(left, right, equal_nan=left.dtype.kind == "f"))
        )
    return type(a) is type(b) and (a == b or (a != a and b != b))


def is_mask(path: Path, value: Any) -> bool:
    if not isinstance(value, jax.Array):
        return False
    if value.dtype == bool:
        return True
    return str(path[-1]).endswith("_mask") and bool(
        np.all((np.asarray(value) == 0) | (np.asarray(value) == 1))
    )


def get(root: Any, path: Path) -> Any:
    for key in path:
        root = (
            root[key] if isinstance(root, dict | list | tuple) else getattr(root, key)
        )
    return root


def put(root: Any, path: Path, value: Any) -> None:
    parent, key = get(root, path[:-1]), path[-1]
    if isinstance(parent, dict | list):
        parent[key] = value
    else:
        setattr(parent, key, value)


def outline(found: list[tuple[Path, Any]]) -> str:
    """A digest of the leaves' paths and kinds: models of one structure share it."""
    digest = hashlib.sha256()
    for path, value in found:
        digest.update(repr((path, type(value).__name__, np.shape(value))).encode())
    return digest.hexdigest()


class Structure:
    """A compiled twice-NLL (with its gradient) and expected data for one structure.

    ``compiles`` counts how many times JAX traced the functions: it stays at one
    per function however many patches the structure serves.
    """

    def __init__(self, model: pyhf.pdf.Model, spec: dict[str, Any]) -> None:
        found = leaves(model)
        other, _ = build(scaled(spec, seed=20261204))
        found_other = leaves(other)
        if [p for p, _ in found] != [p for p, _ in found_other]:
            raise Unsupported("the model's layout depends on its bin contents")

        changed = [
            (path, a)
            for (path, a), (_, b) in zip(found, found_other, strict=True)
            if not same(a, b)
        ]
        self.varying = {path for path, _ in changed}
        # Masks say which sample a modifier acts on in which bin, which a patch
        # may change without changing the model's shape: they are inputs too,
        # the boolean ones and the 0/1 factors pyhf multiplies by (``*_mask``:
        # the lumi and normfactor appliers keep theirs as floats).
        masks = [path for path, value in found if is_mask(path, value)]
        self.varying |= set(masks)
        self.inputs = [
            path
            for path, value in found
            if path in self.varying and isinstance(value, jax.Array)
        ]
        self.outline = outline(found)
        self.key = self.fingerprint(found)
        self.template = model
        self.compiles = 0
        self.value_and_grad = jax.jit(jax.value_and_grad(self._twice_nll))
        self.expected = jax.jit(self._expected_data)
        self.n_main = int(model.config.nmaindata)
        self.newton_fit = newton.make_fit(
            self._twice_nll, self._main_expected, self._twice_constraint, self.n_main
        )
        self.self_check(other)

    def fingerprint(self, found: list[tuple[Path, Any]]) -> str:
        """Digest of everything that is structure: a patch must match it to use it."""
        digest = hashlib.sha256()
        for path, value in found:
            digest.update(repr(path).encode())
            if isinstance(value, float | str | np.floating):
                # Names and the Python copies of the numbers (pyhf's histosets)
                # only build the arrays; the arrays themselves are compared.
                continue
            if path in self.varying:
                digest.update(repr(np.shape(value)).encode())
            elif isinstance(value, ARRAYS):
                array = np.ascontiguousarray(np.asarray(value))
                digest.update(repr((array.shape, str(array.dtype))).encode())
                digest.update(array.tobytes())
            else:
                digest.update(repr((type(value).__name__, value)).encode())
        return digest.hexdigest()

    def serves(self, found: list[tuple[Path, Any]]) -> bool:
        return outline(found) == self.outline and self.fingerprint(found) == self.key

    def arrays(self, model: pyhf.pdf.Model) -> list[Any]:
        return [get(model, path) for path in self.inputs]

    def self_check(self, model: pyhf.pdf.Model) -> None:
        """The compiled functions must give pyhf's own numbers on another model.

        ``model`` has the same structure and other numbers; pyhf's functions of
        that very model object are compiled for the comparison (evaluating them
        op by op would cost more than the compile).
        """
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars = pars + 0.01 * np.arange(len(pars)) / len(pars)
        lo, hi = np.asarray(model.config.suggested_bounds(), dtype=float).T
        pars = np.clip(pars, lo, hi)

        both = jax.jit(
            lambda p: (
                model.expected_data(p),
                model.logpdf(p, model.expected_data(p))[0],
            )
        )
        data, logpdf = both(pars)
        want = float(-2 * logpdf)
        got = float(self.value_and_grad(pars, data, self.arrays(model))[0])
        expected = np.asarray(self.expected(pars, self.arrays(model)))
        if not np.isclose(got, want, rtol=SELF_CHECK_RTOL, atol=0.0):
            raise Unsupported(
                f"the compiled likelihood gives {got!r} where pyhf gives {want!r}"
            )
        if not np.allclose(expected, np.asarray(data), rtol=SELF_CHECK_RTOL):
            raise Unsupported("the compiled expected data differ from pyhf's")

    def _swapped(self, arrays: list[Any], compute: Callable[[], Any]) -> Any:
        # Runs only while JAX traces: the template holds tracers for that moment.
        originals = self.arrays(self.template)
        for path, array in zip(self.inputs, arrays, strict=True):
            put(self.template, path, array)
        try:
            return compute()
        finally:
            for path, array in zip(self.inputs, originals, strict=True):
                put(self.template, path, array)

    def _twice_nll(self, pars: Any, data: Any, arrays: list[Any]) -> Any:
        self.compiles += 1
        return self._swapped(arrays, lambda: -2 * self.template.logpdf(pars, data)[0])

    def _expected_data(self, pars: Any, arrays: list[Any]) -> Any:
        self.compiles += 1
        return self._swapped(arrays, lambda: self.template.expected_data(pars))

    def _main_expected(self, pars: Any, arrays: list[Any]) -> Any:
        return self._swapped(arrays, lambda: self.template.expected_actualdata(pars))

    def _twice_constraint(self, pars: Any, aux: Any, arrays: list[Any]) -> Any:
        return self._swapped(
            arrays, lambda: -2 * self.template.constraint_logpdf(aux, pars)
        )


class Structures:
    """The structures met so far in this process, and those that were refused."""

    def __init__(self) -> None:
        self.known: list[Structure] = []
        self.refused: dict[str, str] = {}
        self.refused_all: str | None = None

    def refuse_all(self, reason: str) -> None:
        self.refused_all = reason

    def lookup(self, model: pyhf.pdf.Model, spec: dict[str, Any]) -> Structure:
        """The structure serving ``model``, compiled on first sight; or Unsupported."""
        if self.refused_all is not None:
            raise Unsupported(self.refused_all)
        found = leaves(model)
        for structure in self.known:
            if structure.serves(found):
                return structure

        refusal = self.refused.get(outline(found))
        if refusal is not None:
            raise Unsupported(refusal)
        try:
            structure = Structure(model, spec)
        except Unsupported as exc:
            self.refused[outline(found)] = str(exc)
            raise
        except Exception as exc:  # any failure to trace means plain pyhf
            reason = f"the model could not be compiled: {type(exc).__name__}: {exc}"
            self.refused[outline(found)] = reason
            raise Unsupported(reason) from exc
        self.known.append(structure)
        return structure

    @property
    def compiles(self) -> int:
        return sum(structure.compiles for structure in self.known)


class Fitter:
    """pyhf's fits (SLSQP through scipy, as pyhf calls it) on one patch's arrays."""

    def __init__(self, structure: Structure, model: pyhf.pdf.Model) -> None:
        self.structure = structure
        self.arrays = structure.arrays(model)
        config = model.config
        self.init = [float(v) for v in config.suggested_init()]
        self.bounds = [tuple(map(float, b)) for b in config.suggested_bounds()]
        self.fixed = list(config.suggested_fixed())
        self.poi = config.poi_index
        self.fits = 0
        self.slsqp_fits = 0

    def fit(self, data: Any, mu: float | None = None) -> tuple[np.ndarray, float]:
        """Best-fit parameters and twice the NLL; ``mu`` fixes the POI as pyhf does.

        The fit runs inside XLA (``newton``); one that does not converge there
        is repeated with pyhf's SLSQP.
        """
        init, fixed = list(self.init), list(self.fixed)
        if mu is not None:
            init[self.poi], fixed[self.poi] = mu, True
        result = newton.run(
            self.structure.newton_fit, init, fixed, self.bounds, data, self.arrays
        )
        self.fits += 1
        if result.converged and np.all(np.isfinite(result.pars)):
            return result.pars, result.twice_nll
        self.fits -= 1
        self.slsqp_fits += 1
        return self.slsqp(data, init, fixed)

    def slsqp(
        self, data: Any, init: list[float], fixed: list[bool]
    ) -> tuple[np.ndarray, float]:
        """pyhf's own fit: SLSQP from pyhf's starting values."""
        data = jnp.asarray(data)
        result = scipy.optimize.minimize(
            lambda pars: self.structure.value_and_grad(pars, data, self.arrays),
            init,
            method="SLSQP",
            jac=True,
            bounds=self.bounds,
            constraints=equalities(init, fixed),
            tol=None,
            options={"maxiter": 100000, "disp": False},
        )
        self.fits += 1
        if not result.success:
            raise FitFailed(f"{result.message} (after {result.nit} iterations)")
        return np.asarray(result.x, dtype=float), float(result.fun)

    def expected_data(self, pars: np.ndarray) -> Any:
        return self.structure.expected(pars, self.arrays)


def equalities(init: list[float], fixed: list[bool]) -> list[dict[str, Any]]:
    """pyhf's constraints for fixed parameters, exactly as pyhf writes them.

    scipy differentiates them numerically, as in pyhf: an exact Jacobian would
    save a little time but move SLSQP's path, and the CLs, by about 1e-6.
    """
    indices = [i for i, is_fixed in enumerate(fixed) if is_fixed]
    if not indices:
        return []
    values = [init[i] for i in indices]
    return [{"type": "eq", "fun": lambda pars: pars[indices] - values}]
