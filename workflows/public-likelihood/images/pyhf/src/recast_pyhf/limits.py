"""95 % CL upper limits on mu (observed and five expected) from one set of tested mu.

Each tested mu gives the five expected CLs at once (they are functions of the
Asimov test statistic alone), and the observed CLs with one more fit. The
expected limits are the mu where sqrt(q_A) reaches the value that puts each
expected CLs at the level; sqrt(q_A) grows almost linearly with mu (and log
CLs_obs nearly so), so secant steps through the mu tested so far, by any of
the six limits, close a bracket of relative width LIMIT_RTOL around each
crossing in two to four fits. The first expected limit starts from a straight
line through the origin and mu = 1, the observed one from the median expected
limit.
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
# A limit is located to a bracket this narrow (relative): whatever the secant
# inside it says, the limit is within LIMIT_RTOL of the true crossing. A
# secant step moves mu by a factor MAX_JUMP at most.
NARROW = LIMIT_RTOL
MAX_JUMP = 2.0
PLOT_POINTS = 12
# CLs underflows to zero past sqrt(q) of about 38; a root search needs finite values.
MAX_SQRTQ = 1e3


def sides(above: list[float], below: list[float]) -> tuple[float | None, float | None]:
    """The highest mu with CLs above the level and the lowest past it below."""
    top = max(above, default=None)
    if top is None:
        return None, min(below, default=None)
    return top, min((mu for mu in below if mu > top), default=None)


def secant(one: tuple[float, float], two: tuple[float, float]) -> float:
    """Where the line through two (mu, distance) points crosses zero; NaN if flat."""
    (x1, y1), (x2, y2) = one, two
    if y1 == y2 or not all(map(math.isfinite, (x1, y1, x2, y2))):
        return math.nan
    return x1 - y1 * (x2 - x1) / (y2 - y1)


def estimate(seen: dict[float, float], guess: float) -> float:
    """The first mu to test: the secant through the two tested mu nearest the root."""
    nearest = sorted(seen, key=lambda m: abs(seen[m]))[:2]
    if len(nearest) == 2:
        root = secant(*((m, seen[m]) for m in nearest))
        if math.isfinite(root) and root > 0:
            return root
    return guess


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
        # log CLs is closer to a straight line in mu than CLs: better secants.
        return self.crossing(
            lambda mu: math.log(max(self.observed(mu), 1e-300) / LEVEL),
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
        """The root of ``distance`` (positive below it), bracketed from tested mu.

        Secant steps through the mu tested so far (every limit of a point shares
        them) close a bracket of relative width NARROW around the root; the
        secant's root inside it is the limit. Where no narrow bracket came
        within MAX_STEPS, toms748 finishes from the one found.
        """
        above, below = self.bracket(tested, cls_of)
        if above is None or below is None or below - above > NARROW * below:
            above, below = self.search(distance, guess, tested)
        if below - above <= NARROW * below:
            root = secant((above, distance(above)), (below, distance(below)))
            return float(min(max(root, above), below)) if root == root else below
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
        return sides(above, below)

    def search(
        self,
        distance: Callable[[float], float],
        guess: float,
        tested: dict[float, object],
    ) -> tuple[float, float]:
        """Secant steps until the crossing lies in a narrow bracket, within bounds."""
        bottom = self.low + 1e-3 * (self.high - self.low)
        floor = bottom * 1e-6
        # The distances at mu already tested cost nothing: their fits are kept.
        seen = {mu: distance(mu) for mu in tested}
        mu = float(np.clip(estimate(seen, guess), bottom, self.high))
        for _ in range(MAX_STEPS):
            if mu not in seen:
                seen[mu] = distance(mu)
            above, below = sides(
                [m for m, d in seen.items() if d >= 0],
                [m for m, d in seen.items() if d < 0],
            )
            if above is not None and below is not None:
                if below - above <= NARROW * below:
                    return above, below
            elif above is not None and above >= self.high:
                raise NoLimit(
                    f"CLs is still above {LEVEL} at the upper bound of the POI, "
                    f"mu = {self.high:g}"
                )
            elif below is not None and above is None and below <= floor:
                raise NoLimit(f"CLs is already below {LEVEL} at mu = {below:g}")
            mu = self.next_mu(seen, above, below, floor)
        if above is not None and below is not None:
            return above, below
        raise NoLimit(f"no crossing of CLs = {LEVEL} found in {MAX_STEPS} steps")

    def next_mu(
        self,
        seen: dict[float, float],
        above: float | None,
        below: float | None,
        floor: float,
    ) -> float:
        """The secant's root, or a step outwards where it has none to offer."""
        if above is not None and below is not None:
            root = secant((above, seen[above]), (below, seen[below]))
            low, high = above, below
            if not low <= root <= high:
                root = 0.5 * (low + high)
        else:
            nearest = sorted(seen, key=lambda m: abs(seen[m]))[:2]
            root = (
                secant(*((m, seen[m]) for m in nearest))
                if len(nearest) == 2
                else math.nan
            )
            # Without a bracket, a step goes the way the sign says, and not far.
            if above is not None:
                low, high = above * (1 + NARROW), min(above * MAX_JUMP, self.high)
                if not low < root <= high:
                    root = min(above * STEP, self.high)
            else:
                assert below is not None
                low, high = max(below / MAX_JUMP, floor), below * (1 - NARROW)
                if not low <= root < high:
                    root = max(below / STEP, floor)
        root = min(max(root, low), high)
        # Close to a tested mu, step just past the root: the next bracket is
        # then about NARROW wide.
        near = min(seen, key=lambda m: abs(m - root))
        if abs(root - near) <= 0.75 * NARROW * root:
            side = 1.0 if seen[near] >= 0 else -1.0
            root = root * (1 + side * NARROW / 4)
        return float(min(max(root, floor), self.high))

    def plot_grid(self, limits_found: list[float]) -> None:
        """About evenly spaced mu up to past the limits, reusing those tested."""
        top = min(self.high, 1.25 * max(limits_found, default=self.high))
        spacing = top / PLOT_POINTS
        for mu in np.linspace(spacing, top, PLOT_POINTS):
            if any(abs(m - mu) < spacing / 2 for m in self.observed_at):
                continue
            # A mu whose Asimov fit the limits already ran needs one fit, not two.
            near = [m for m in self.expected_at if abs(m - mu) < spacing / 2]
            self.observed(min(near, key=lambda m: abs(m - mu), default=float(mu)))

    def scan(self) -> dict[str, list[float] | list[list[float]]]:
        mus = sorted(self.observed_at)
        return {
            "mu": mus,
            "cls_obs": [self.observed_at[mu] for mu in mus],
            "cls_exp": [self.expected_at[mu] for mu in mus],
        }


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)
