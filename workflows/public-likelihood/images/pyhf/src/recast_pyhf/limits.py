"""95 % CL upper limits on mu (observed and five expected) from one set of tested mu.

Each tested mu gives the five expected CLs at once (they are functions of the
Asimov test statistic alone), and the observed CLs with one more fit. The
expected limits are the mu where sqrt(q_A) reaches the value that puts each
expected CLs at the level; sqrt(q_A) grows almost linearly with mu, so a
straight-line guess through the origin lands close and toms748 finishes in a
few steps. The observed search starts from the median expected limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.optimize
from scipy.special import ndtr, ndtri

from .asymptotics import SIGMAS, Calculator

LEVEL = 0.05
# Relative tolerance of every limit (scipy's toms748 rtol): far below what a
# limit means statistically, and each tighter decade costs about one more
# tested mu per limit.
LIMIT_RTOL = 1e-4
LIMIT_ATOL = 1e-10
MAX_STEPS = 40
STEP = 1.3
PLOT_POINTS = 12
# CLs underflows to zero past sqrt(q) of about 38; a root search needs finite values.
MAX_SQRTQ = 1e3


class NoLimit(Exception):
    """The limit lies outside what the POI's bounds allow to test."""


def asimov_target(n_sigma: int) -> float:
    """The sqrt(q_A) at which the expected CLs at ``n_sigma`` equals the level."""
    return float(-n_sigma - ndtri(LEVEL * ndtr(-n_sigma)))


class Curves:
    """The CLs curves of one patch, recording which mu were tested for what."""

    def __init__(self, calculator: Calculator, low: float, high: float) -> None:
        self.calculator = calculator
        self.low, self.high = max(low, 0.0), high
        self.observed_at: dict[float, float] = {}
        self.expected_at: dict[float, list[float]] = {}

    def observed(self, mu: float) -> float:
        if mu not in self.observed_at:
            self.observed_at[mu] = self.calculator.observed(mu)
            self.expected(mu)
        return self.observed_at[mu]

    def expected(self, mu: float) -> list[float]:
        if mu not in self.expected_at:
            self.expected_at[mu] = self.calculator.expected(mu)
        return self.expected_at[mu]

    def limits(self) -> tuple[float | None, list[float | None], str]:
        """Observed and expected limits, or Nones and the reason none was found."""
        try:
            expected = [self.expected_limit(i) for i in range(len(SIGMAS))]
            observed = self.observed_limit(expected[2])
        except NoLimit as exc:
            return None, [None] * len(SIGMAS), str(exc)
        return observed, list(expected), ""

    def expected_limit(self, index: int) -> float:
        """Where the expected CLs at SIGMAS[index] crosses the level."""
        target = asimov_target(SIGMAS[index])

        def distance(mu: float) -> float:
            return target - self.sqrtq_asimov(mu)

        slope = self.sqrtq_asimov(1.0)
        guess = target / slope if slope > 0 else self.high
        return self.crossing(distance, guess, self.expected_at, lambda v: v[index])

    def sqrtq_asimov(self, mu: float) -> float:
        # CLs_exp at 0 sigma is ndtr(-sqrt(q_A)) / 0.5, so sqrt(q_A) comes back exactly
        # enough for a root search: ndtri is accurate far into the tail.
        return min(float(-ndtri(self.expected(mu)[2] * 0.5)), MAX_SQRTQ)

    def observed_limit(self, guess: float) -> float:
        return self.crossing(
            lambda mu: self.observed(mu) - LEVEL,
            guess,
            self.observed_at,
            lambda v: v,
        )

    def crossing(
        self,
        distance: Callable[[float], float],
        guess: float,
        tested: dict[float, object],
        cls_of: Callable[[object], float],
    ) -> float:
        """The root of ``distance`` (positive below it), bracketed from tested mu."""
        above, below = self.bracket(tested, cls_of)
        if above is None or below is None:
            above, below = self.search(distance, guess, above, below)
        return float(
            scipy.optimize.toms748(
                distance, above, below, k=2, xtol=LIMIT_ATOL, rtol=LIMIT_RTOL
            )
        )

    @staticmethod
    def bracket(
        tested: dict[float, object], cls_of: Callable[[object], float]
    ) -> tuple[float | None, float | None]:
        above = [mu for mu, v in tested.items() if cls_of(v) >= LEVEL]
        below = [mu for mu, v in tested.items() if cls_of(v) < LEVEL]
        top = max(above, default=None)
        if top is None:
            return None, min(below, default=None)
        beyond = [mu for mu in below if mu > top]
        return top, min(beyond, default=None)

    def search(
        self,
        distance: Callable[[float], float],
        guess: float,
        above: float | None,
        below: float | None,
    ) -> tuple[float, float]:
        """Step from the guess until the crossing is bracketed, within the bounds."""
        bottom = self.low + 1e-3 * (self.high - self.low)
        mu = float(np.clip(guess, bottom, self.high))
        for _ in range(MAX_STEPS):
            if distance(mu) >= 0:
                above = mu
                if below is not None:
                    return above, below
                if mu >= self.high:
                    raise NoLimit(
                        f"CLs is still above {LEVEL} at the upper bound of the POI, "
                        f"mu = {self.high:g}"
                    )
                mu = min(mu * STEP, self.high)
            else:
                below = mu
                if above is not None:
                    return above, below
                mu = mu / STEP
                if mu < bottom * 1e-6:
                    raise NoLimit(f"CLs is already below {LEVEL} at mu = {below:g}")
        raise NoLimit(f"no crossing of CLs = {LEVEL} found in {MAX_STEPS} steps")

    def plot_grid(self, limits_found: list[float]) -> None:
        """Evenly spaced mu up to past the limits, skipping those already tested."""
        top = min(self.high, 1.25 * max(limits_found, default=self.high))
        spacing = top / PLOT_POINTS
        for mu in np.linspace(spacing, top, PLOT_POINTS):
            near = [m for m in self.observed_at if abs(m - mu) < spacing / 2]
            if not near:
                self.observed(float(mu))

    def scan(self) -> dict[str, list[float] | list[list[float]]]:
        mus = sorted(self.observed_at)
        return {
            "mu": mus,
            "cls_obs": [self.observed_at[mu] for mu in mus],
            "cls_exp": [self.expected_at[mu] for mu in mus],
        }


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)
