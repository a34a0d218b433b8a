"""One compiled likelihood per model structure, serving every patch of that structure.

pyhf's JAX backend compiles the objective once per model object, which costs
more than the fits themselves when a scan builds one model per signal point.
Here the arrays that hold a model's numbers (nominal rates, interpolation
deltas, constraint widths) become inputs of a function compiled once; pyhf's
own ``logpdf`` and ``expected_data`` still do the computing, on a template
model whose arrays are swapped for the inputs while JAX traces it. So every
modifier and interpolation code pyhf supports is covered.

A batch runs in two passes. First, with pyhf's numpy backend, every patch's
model is built and its numbers taken out (``Survey``): pyhf builds a model
several times faster on numpy, where its index bookkeeping is plain array
code, than on JAX, where every such operation is dispatched on its own. Then,
on the JAX backend, one template model is built per structure and compiled
(``Structures``), and every patch is fitted with its own numbers as inputs.

Which arrays carry numbers and which carry structure (indices, masks) is found
by building the model a second time from the same workspace with every bin
content and modifier value scaled by a random factor: the arrays that change
are inputs, everything else is structure and must be identical, value for
value, in any patch the compiled function serves. A structure whose compiled
functions do not reproduce pyhf's numpy evaluation, on the scaled model and on
the template's own, is refused, and its points go the plain pyhf way.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import logging
import pickle
import random
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import scipy.optimize

from . import exports, newton
from .documents import Owned

logger = logging.getLogger(__name__)

MODIFIER_SETTINGS = {
    "normsys": {"interpcode": "code4"},
    "histosys": {"interpcode": "code4p"},
}
SCALARS = (bool, int, float, str, type(None), np.generic)
NUMBERS = (int, float)
ARRAYS = (np.ndarray, jax.Array)
Path = tuple[Any, ...]
# How closely the compiled function must reproduce pyhf's own evaluation.
SELF_CHECK_RTOL = 1e-9
SCALE_SEED = 20261204


class Unsupported(Exception):
    """This structure cannot be served by a compiled function; use plain pyhf."""


class FitFailed(Exception):
    """The optimizer did not converge, as pyhf's FailedMinimization."""


def build(spec: dict[str, Any]) -> tuple[pyhf.pdf.Model, list[float]]:
    """The model and data of a workspace already validated by the patch step,
    as ``pyhf.Workspace(spec).model()`` and ``.data(model)`` make them (the
    first measurement), without validating or copying ``spec`` again: the
    caller hands over a document it does not use afterwards."""
    measurements = spec.get("measurements") or []
    if not measurements:
        raise pyhf.exceptions.InvalidSpecification("the workspace has no measurement")
    config = measurements[0]["config"]
    model = pyhf.Model(
        Owned(channels=spec["channels"], parameters=config.get("parameters", [])),
        poi_name=config["poi"],
        modifier_settings=MODIFIER_SETTINGS,
        validate=False,
    )
    observations = {obs["name"]: obs["data"] for obs in spec["observations"]}
    missing = [c for c in model.config.channels if c not in observations]
    if missing:
        raise pyhf.exceptions.InvalidSpecification(
            f"the workspace has no observations for channel '{missing[0]}'"
        )
    data = [x for channel in model.config.channels for x in observations[channel]]
    return model, data + list(model.config.auxdata)


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
        if isinstance(node, list) and node and all(type(v) in NUMBERS for v in node):
            # pyhf's Python copies of the numbers, one leaf a list rather than
            # one a number: a 1Lbb model holds 30 000 of them, and walking
            # them one by one cost a fifth of preparing a patch.
            found.append((path, tuple(node)))
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
    if not isinstance(value, ARRAYS):
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


@dataclass(frozen=True)
class Reference:
    """pyhf's own numbers for one model at one parameter point, to check against."""

    pars: np.ndarray
    data: np.ndarray
    twice_nll: float
    arrays: dict[Path, np.ndarray]

    @classmethod
    def of(cls, model: pyhf.pdf.Model, arrays: dict[Path, np.ndarray]) -> Reference:
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars = pars + 0.01 * np.arange(len(pars)) / len(pars)
        lo, hi = np.asarray(model.config.suggested_bounds(), dtype=float).T
        pars = np.clip(pars, lo, hi)
        data = np.asarray(model.expected_data(pars), dtype=float)
        twice_nll = float(-2 * np.asarray(model.logpdf(pars, data))[0])
        return cls(pars, data, twice_nll, arrays)


@dataclass(frozen=True)
class PointConfig:
    """What a fit needs from a model's configuration, as plain Python."""

    poi_name: str
    poi_index: int
    init: list[float]
    bounds: list[tuple[float, float]]
    fixed: list[bool]
    n_bins: int

    @classmethod
    def of(cls, model: pyhf.pdf.Model) -> PointConfig:
        config = model.config
        return cls(
            poi_name=str(config.poi_name),
            poi_index=int(config.poi_index),
            init=[float(v) for v in config.suggested_init()],
            bounds=[(float(lo), float(hi)) for lo, hi in config.suggested_bounds()],
            fixed=[bool(f) for f in config.suggested_fixed()],
            n_bins=int(sum(config.channel_nbins.values())),
        )


class Layout:
    """Where the numbers of one model layout are (numpy pass): the leaves that
    change when the workspace's numbers change, and the masks."""

    def __init__(self, found: list[tuple[Path, Any]], spec: dict[str, Any]) -> None:
        other, _ = build(scaled(spec, seed=SCALE_SEED))
        found_other = leaves(other)
        self.paths = [path for path, _ in found]
        self.digest = hashlib.sha256(repr(self.paths).encode()).hexdigest()
        if not self.matches(found_other):
            raise Unsupported("the model's layout depends on its bin contents")

        self.changed = {
            path
            for (path, a), (_, b) in zip(found, found_other, strict=True)
            if not same(a, b)
        }
        # Masks say which sample a modifier acts on in which bin, which a patch
        # may change without changing the model's shape: they are inputs too,
        # the boolean ones and the 0/1 factors pyhf multiplies by (``*_mask``:
        # the lumi and normfactor appliers keep theirs as floats).
        self.masks = {path for path, value in found if is_mask(path, value)}
        self.varying = self.changed | self.masks
        # Positions, not paths: every model of this layout has its leaves in
        # this order, and hashing 40 000 paths a patch costs more than the fit.
        self.varying_at = [
            i for i, path in enumerate(self.paths) if path in self.varying
        ]
        self.structural_at = [
            index
            for index, (path, value) in enumerate(found)
            # Names and the Python copies of the numbers (pyhf's histosets,
            # walked as tuples) only build the arrays; the arrays themselves
            # are compared.
            if path not in self.varying and not isinstance(value, float | str | tuple)
        ]
        self.scaled_check = Reference.of(other, self.numbers(found_other))

    def matches(self, found: list[tuple[Path, Any]]) -> bool:
        return self.paths == [path for path, _ in found]

    def numbers(self, found: list[tuple[Path, Any]]) -> dict[Path, np.ndarray]:
        numbers = (found[index] for index in self.varying_at)
        return {path: value for path, value in numbers if isinstance(value, np.ndarray)}

    def fingerprint(self, found: list[tuple[Path, Any]]) -> str:
        """Digest of everything that is structure: a patch must match it to use it."""
        values = [found[index][1] for index in self.structural_at]
        shapes = [np.shape(found[index][1]) for index in self.varying_at]
        return hashlib.sha256(pickle.dumps((values, shapes), protocol=5)).hexdigest()


@dataclass
class Prepared:
    """One patch after the numpy pass: its numbers, its structure, its config.

    ``source`` gives the workspace again, for a template or for plain pyhf.
    """

    source: Callable[[], dict[str, Any]]
    data: list[float]
    config: PointConfig
    layout: Layout | None = None
    key: str = ""
    numbers: dict[Path, np.ndarray] | None = None
    unsupported: str = ""


class Survey:
    """The numpy pass over a batch: each patch's model built once, on numpy."""

    def __init__(self, fast: bool = True) -> None:
        self.fast = fast
        self.layouts: list[Layout] = []
        self.refused: list[tuple[list[Path], str]] = []
        self.references: dict[str, Reference] = {}

    def prepare(
        self, spec: dict[str, Any], source: Callable[[], dict[str, Any]]
    ) -> Prepared:
        """Needs pyhf's numpy backend; takes ``spec`` over (see ``build``)."""
        model, data = build(spec)
        prepared = Prepared(source, data, PointConfig.of(model))
        if not self.fast:
            return prepared
        found = leaves(model)
        try:
            layout = self.layout(found, spec)
        except Unsupported as exc:
            prepared.unsupported = str(exc)
            return prepared

        prepared.layout, prepared.numbers = layout, layout.numbers(found)
        prepared.key = layout.fingerprint(found)
        if prepared.key not in self.references:
            self.references[prepared.key] = Reference.of(model, prepared.numbers)
        return prepared

    def layout(self, found: list[tuple[Path, Any]], spec: dict[str, Any]) -> Layout:
        # The paths listed once for every layout met: 10 000 of them a model.
        paths = [path for path, _ in found]
        for layout in self.layouts:
            if layout.paths == paths:
                return layout
        for refused, reason in self.refused:
            if refused == paths:
                raise Unsupported(reason)
        try:
            layout = Layout(found, spec)
        except Unsupported as exc:
            self.refused.append((paths, str(exc)))
            raise
        self.layouts.append(layout)
        return layout


class Structure:
    """A compiled twice-NLL (with its gradient) and expected data for one structure.

    Loaded from what an earlier process kept (``exports``), or built on the JAX
    backend from the first patch of its structure and traced. ``compiles``
    counts how many times JAX traced the functions: one per function for a
    traced structure however many patches it serves, none for a loaded one.
    """

    def __init__(self, first: Prepared, reference: Reference) -> None:
        assert first.layout is not None and first.numbers is not None
        layout = first.layout
        self.key = first.key
        self.compiles = 0
        self.template: pyhf.pdf.Model | None = None
        kept_under = exports.key_of(first.key, layout.digest)
        if not self._load(kept_under, first.numbers, layout, reference):
            self._trace_and_keep(kept_under, first)
            self.self_checks(layout, reference)

    def _load(
        self,
        key: str,
        numbers: dict[Path, np.ndarray],
        layout: Layout,
        reference: Reference,
    ) -> bool:
        """Use the functions kept under ``key`` if there are any and they pass
        the self-checks."""
        kept = exports.load(key)
        if kept is None or not self._use(*kept, numbers):
            return False
        try:
            self.self_checks(layout, reference)
        except Exception as exc:  # a kept entry that fails is traced anew
            logger.warning("traced again: the kept structure failed: %s", exc)
            return False
        return True

    def _trace_and_keep(self, key: str, first: Prepared) -> None:
        metadata, traced = self._trace(first)
        functions = exports.save(key, metadata, traced)
        self._use(metadata, functions, first.numbers or {})
        if all(functions[name] is not jitted for name, (jitted, _) in traced.items()):
            # Exported: the functions no longer need the template or what
            # tracing left behind, a few hundred MB over four structures.
            self.template = None
            del traced, functions
            jax.clear_caches()
            gc.collect()

    def self_checks(self, layout: Layout, reference: Reference) -> None:
        self.self_check(layout.scaled_check, "a copy with other numbers")
        self.self_check(reference, "its first patch")

    def _use(
        self,
        metadata: dict[str, Any],
        functions: dict[str, Any],
        numbers: dict[Path, np.ndarray],
    ) -> bool:
        """Take the functions and where their inputs are; False where the
        metadata do not fit this structure's numbers (a damaged entry)."""
        try:
            inputs = [tuple(path) for path in metadata["inputs"]]
            fixed = [tuple(path) for path in metadata["fixed_masks"]]
            self.fixed_masks = {path: numbers[path] for path in fixed}
            if not all(path in numbers for path in inputs):
                return False
            self.inputs, self.n_main = inputs, int(metadata["n_main"])
            self.value_and_grad = functions["value_and_grad"]
            self.expected = functions["expected"]
            self.newton_fit = functions["newton_fit"]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def _trace(
        self, first: Prepared
    ) -> tuple[dict[str, Any], dict[str, tuple[Any, tuple[Any, ...]]]]:
        """Build the template model on JAX; its metadata, and its functions
        jitted with example arguments (traced when first called or exported)."""
        assert first.layout is not None and first.numbers is not None
        layout, numbers = first.layout, first.numbers
        model, _ = build(first.source())
        found = leaves(model)
        if not layout.matches(found):
            raise Unsupported("pyhf lays this model out differently on JAX and numpy")

        self.inputs = [
            path
            for path, value in found
            if path in layout.varying and isinstance(value, jax.Array)
        ]
        for path in self.inputs:
            value, number = get(model, path), numbers[path]
            if np.shape(value) != number.shape or value.dtype != number.dtype:
                raise Unsupported(f"pyhf's JAX model holds {path} unlike numpy's")
        self.template = model
        n_main = int(model.config.nmaindata)
        metadata = {
            "inputs": self.inputs,
            # Masks pyhf keeps outside its tensors must match, as structure does.
            "fixed_masks": [
                path
                for path, value in found
                if path in layout.masks - layout.changed
                and not isinstance(value, jax.Array)
            ],
            "n_main": n_main,
        }
        return metadata, self._jitted(first, n_main)

    def _jitted(
        self, first: Prepared, n_main: int
    ) -> dict[str, tuple[Any, tuple[Any, ...]]]:
        pars = jnp.asarray(first.config.init, dtype=float)
        data = jnp.asarray(first.data, dtype=float)
        arrays = self.arrays(first.numbers or {})
        free = jnp.ones(pars.shape, dtype=bool)
        fit = newton.make_fit(
            self._twice_nll, self._main_expected, self._twice_constraint, n_main
        )
        return {
            "value_and_grad": (
                jax.jit(jax.value_and_grad(self._twice_nll)),
                (pars, data, arrays),
            ),
            "expected": (jax.jit(self._expected_data), (pars, arrays)),
            "newton_fit": (fit, (pars, free, pars, pars, data, arrays)),
        }

    def serves(self, prepared: Prepared) -> bool:
        numbers = prepared.numbers or {}
        return prepared.key == self.key and all(
            same(numbers[path], mask) for path, mask in self.fixed_masks.items()
        )

    def arrays(self, numbers: dict[Path, np.ndarray]) -> list[Any]:
        return [jnp.asarray(numbers[path]) for path in self.inputs]

    def self_check(self, reference: Reference, which: str) -> None:
        """The compiled functions must give pyhf's own (numpy) numbers."""
        arrays = self.arrays(reference.arrays)
        got = float(self.value_and_grad(reference.pars, reference.data, arrays)[0])
        expected = np.asarray(self.expected(reference.pars, arrays))
        if not np.isclose(got, reference.twice_nll, rtol=SELF_CHECK_RTOL, atol=0.0):
            raise Unsupported(
                f"on {which}, the compiled likelihood gives {got!r} where pyhf "
                f"gives {reference.twice_nll!r}"
            )
        if not np.allclose(expected, reference.data, rtol=SELF_CHECK_RTOL):
            raise Unsupported(
                f"on {which}, the compiled expected data differ from pyhf's"
            )

    def _swapped(self, arrays: list[Any], compute: Callable[[], Any]) -> Any:
        # Runs only while JAX traces: the template holds tracers for that moment.
        originals = [get(self.template, path) for path in self.inputs]
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
    """The JAX pass: the structures met so far in this process, and those refused."""

    def __init__(self, survey: Survey) -> None:
        self.survey = survey
        self.known: list[Structure] = []
        self.refused: dict[str, str] = {}
        self.refused_all: str | None = None

    def refuse_all(self, reason: str) -> None:
        self.refused_all = reason

    def lookup(self, prepared: Prepared) -> Structure:
        """The structure serving ``prepared``, compiled on first sight.

        Raises Unsupported where it cannot be compiled or was refused before.
        """
        if self.refused_all is not None:
            raise Unsupported(self.refused_all)
        if prepared.unsupported:
            raise Unsupported(prepared.unsupported)
        for structure in self.known:
            if structure.serves(prepared):
                return structure

        refusal = self.refused.get(prepared.key)
        if refusal is not None:
            raise Unsupported(refusal)
        try:
            structure = Structure(prepared, self.survey.references[prepared.key])
        except Unsupported as exc:
            self.refused[prepared.key] = str(exc)
            raise
        except Exception as exc:  # any failure to trace means plain pyhf
            reason = f"the model could not be compiled: {type(exc).__name__}: {exc}"
            self.refused[prepared.key] = reason
            raise Unsupported(reason) from exc
        self.known.append(structure)
        return structure

    @property
    def compiles(self) -> int:
        return sum(structure.compiles for structure in self.known)


class Fitter:
    """pyhf's fits (SLSQP through scipy, as pyhf calls it) on one patch's arrays."""

    def __init__(self, structure: Structure, prepared: Prepared) -> None:
        self.structure = structure
        self.arrays = structure.arrays(prepared.numbers or {})
        config = prepared.config
        self.init = list(config.init)
        self.bounds = list(config.bounds)
        self.fixed = list(config.fixed)
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
