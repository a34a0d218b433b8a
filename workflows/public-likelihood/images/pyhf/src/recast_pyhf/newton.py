"""Maximum-likelihood fits inside XLA: a bounded Gauss-Newton method, one call a fit.

SLSQP through scipy costs a Python round trip for every likelihood call (about
85 a fit) and its own dense quadratic programme on every iteration. Here the
whole fit is one compiled ``lax.while_loop``: each iteration takes the
Jacobian of the main model's expected counts (one reverse pass per bin, and a
published likelihood has few bins against many parameters), the Poisson
likelihood's Gauss-Newton matrix ``2 J^T diag(n / lambda^2) J`` plus the
exact Hessian of the constraint terms, and a Levenberg-Marquardt step that
is kept inside the parameters' bounds. The gradient is exact, so the fit ends
at the same minimum SLSQP approaches, only more tightly: it stops when the
projected gradient of twice the NLL is below ``GRADIENT_TOLERANCE``.

Why not a library: optimistix's minimisers (Newton, BFGS, trust region) and
optax's L-BFGS take no bounds, and pyhf's bounds (a POI at zero, a gamma near
zero) are active in real fits; the projection below is a few lines. The exact
Hessian (``jax.hessian`` of pyhf's logpdf) costs fifty Jacobians here, which
is why the Poisson part uses its Gauss-Newton matrix instead.

A fit that does not converge within ``MAX_ITERATIONS`` (or whose damping runs
away) reports so, and the caller repeats that one fit with SLSQP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Twice the NLL: a gradient of 1e-6 leaves it about 1e-12 above its minimum for
# unit curvature, far below what CLs at 1e-4 notices, and well above rounding.
GRADIENT_TOLERANCE = 1e-6
MAX_ITERATIONS = 200
MAX_DAMPING = 1e12
# pyhf's starting values are far from the minimum: a damped first step is
# taken more often than a full Gauss-Newton one (fewer iterations on 1Lbb).
START_DAMPING = 1e-1


class Result(NamedTuple):
    pars: np.ndarray
    twice_nll: float
    converged: bool
    iterations: int


class _State(NamedTuple):
    pars: Any
    value: Any
    gradient: Any
    curvature: Any
    correction: Any
    damping: Any
    iterations: Any
    converged: Any


def moving(gradient: Any, pars: Any, lo: Any, hi: Any, free: Any) -> Any:
    """The free parameters not held at a bound that the gradient pushes against."""
    at_lo = (pars <= lo) & (gradient > 0)
    at_hi = (pars >= hi) & (gradient < 0)
    return free & ~at_lo & ~at_hi


def secant(state: _State, pars: Any, gradient: Any, curvature: Any) -> Any:
    """The Dennis-Gay-Welsch update of the Gauss-Newton matrix's missing part.

    Gauss-Newton leaves out the Poisson residuals times the counts' second
    derivatives, which slows the last digits down to a linear rate; the exact
    gradients at both ends of a step tell how much curvature is missing along
    it (as NL2SOL does), which restores a superlinear rate.
    """
    s = pars - state.pars
    y = gradient - state.gradient
    ys = y @ s
    missing = y - curvature @ s - state.correction @ s
    update = (jnp.outer(missing, y) + jnp.outer(y, missing)) / ys - (
        (missing @ s) * jnp.outer(y, y)
    ) / ys**2
    usable = (ys > 1e-12 * jnp.linalg.norm(s) * jnp.linalg.norm(y)) & jnp.all(
        jnp.isfinite(update)
    )
    return jnp.where(usable, state.correction + update, state.correction)


def make_fit(
    twice_nll: Callable[[Any, Any, Any], Any],
    main_expected: Callable[[Any, Any], Any],
    twice_constraint: Callable[[Any, Any, Any], Any],
    n_main: int,
) -> Callable[..., Any]:
    """A jitted ``fit(init, free, lo, hi, data, arrays)`` for one structure.

    ``twice_nll(pars, data, arrays)`` is pyhf's -2 logpdf; ``main_expected``
    the main model's expected counts; ``twice_constraint(pars, auxdata,
    arrays)`` the constraint terms' -2 logpdf. Their sum must be ``twice_nll``
    up to constants (the self-check of the structure compares the gradients).
    """

    def derivatives(pars: Any, data: Any, arrays: Any) -> tuple[Any, Any]:
        counts, pullback = jax.vjp(lambda p: main_expected(p, arrays), pars)
        jacobian = jax.vmap(pullback)(jnp.eye(n_main, dtype=counts.dtype))[0]
        observed, aux = data[:n_main], data[n_main:]
        residual = 1.0 - observed / counts
        gradient = 2.0 * jacobian.T @ residual
        weights = observed / counts**2
        curvature = 2.0 * (jacobian.T * weights) @ jacobian
        constraint = jax.grad(twice_constraint)(pars, aux, arrays)
        constraint_curvature = jax.hessian(twice_constraint)(pars, aux, arrays)
        return gradient + constraint, curvature + constraint_curvature

    def fit(init: Any, free: Any, lo: Any, hi: Any, data: Any, arrays: Any) -> Any:
        def reduced(gradient: Any, curvature: Any, pars: Any) -> tuple[Any, Any]:
            # Fixed parameters and those held at a bound drop out of the step.
            move = moving(gradient, pars, lo, hi, free)
            keep = move[:, None] & move[None, :]
            matrix = jnp.where(keep, curvature, 0.0) + jnp.diag(
                jnp.where(move, 0.0, 1.0)
            )
            return jnp.where(move, gradient, 0.0), matrix

        def done(gradient: Any, pars: Any) -> Any:
            pg = jnp.where(moving(gradient, pars, lo, hi, free), gradient, 0.0)
            return jnp.max(jnp.abs(pg)) <= GRADIENT_TOLERANCE

        def step(state: _State) -> _State:
            gradient, matrix = reduced(
                state.gradient, state.curvature + state.correction, state.pars
            )
            scale = jnp.diag(matrix)
            damped = matrix + state.damping * jnp.diag(jnp.maximum(scale, 1e-12))
            trial = jnp.clip(state.pars - jnp.linalg.solve(damped, gradient), lo, hi)
            value = twice_nll(trial, data, arrays)
            # Near the minimum the NLL changes by less than its rounding: a step
            # within rounding of the current value is taken too.
            slack = 1e-13 * jnp.maximum(jnp.abs(state.value), 1.0)
            better = jnp.isfinite(value) & (value <= state.value + slack)

            def accept(_: Any) -> _State:
                gradient, curvature = derivatives(trial, data, arrays)
                return _State(
                    trial,
                    value,
                    gradient,
                    curvature,
                    secant(state, trial, gradient, curvature),
                    jnp.maximum(state.damping * 0.1, 1e-9),
                    state.iterations + 1,
                    done(gradient, trial),
                )

            def reject(_: Any) -> _State:
                return state._replace(
                    damping=state.damping * 10.0, iterations=state.iterations + 1
                )

            return jax.lax.cond(better, accept, reject, None)

        def going(state: _State) -> Any:
            return (
                ~state.converged
                & (state.iterations < MAX_ITERATIONS)
                & (state.damping < MAX_DAMPING)
            )

        gradient, curvature = derivatives(init, data, arrays)
        start = _State(
            init,
            twice_nll(init, data, arrays),
            gradient,
            curvature,
            jnp.zeros_like(curvature),
            jnp.asarray(START_DAMPING, dtype=init.dtype),
            jnp.asarray(0),
            done(gradient, init),
        )
        final = jax.lax.while_loop(going, step, start)
        return final.pars, final.value, final.converged, final.iterations

    return jax.jit(fit)


def run(
    fit: Callable[..., Any],
    init: list[float],
    fixed: list[bool],
    bounds: list[tuple[float, float]],
    data: Any,
    arrays: Any,
) -> Result:
    lo, hi = (jnp.asarray(b, dtype=float) for b in zip(*bounds, strict=True))
    free = jnp.asarray([not f for f in fixed])
    pars, value, converged, iterations = fit(
        jnp.asarray(init, dtype=float), free, lo, hi, jnp.asarray(data), arrays
    )
    return Result(
        np.asarray(pars, dtype=float), float(value), bool(converged), int(iterations)
    )
