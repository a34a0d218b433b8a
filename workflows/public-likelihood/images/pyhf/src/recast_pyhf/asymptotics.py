"""CLs with pyhf's asymptotic calculator and qtilde, from fits shared across mu.

pyhf's ``hypotest`` runs five fits for each tested mu. Three of them do not
depend on mu: the mu = 0 fit that makes the Asimov dataset, and the free fits
on the data and on that Asimov dataset. ``FastCalculator`` runs those once per
patch and, for each tested mu, only the two fits with mu fixed; the expected
CLs need only the Asimov one. The formulas are pyhf's own (AsymptoticCalculator
with the normal base distribution).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import pyhf
from scipy.special import ndtr

from .compiled import Fitter

SIGMAS = (2, 1, 0, -1, -2)


class Calculator(Protocol):
    fits: int
    slsqp_fits: int

    def observed(self, mu: float) -> float: ...

    def expected(self, mu: float) -> list[float]: ...


def qtilde(fixed_nll: float, free_nll: float, muhat: float, mu: float) -> float:
    if muhat > mu:
        return 0.0
    return max(fixed_nll - free_nll, 0.0)


def cls_observed(sqrtq: float, sqrtq_asimov: float) -> float:
    if sqrtq <= sqrtq_asimov:
        teststat = sqrtq - sqrtq_asimov
    else:
        teststat = (sqrtq**2 - sqrtq_asimov**2) / (2 * sqrtq_asimov)
    # The signal-plus-background distribution is shifted by -sqrt(q_A).
    return float(ndtr(-(teststat + sqrtq_asimov)) / ndtr(-teststat))


def cls_expected(sqrtq_asimov: float) -> list[float]:
    return [float(ndtr(-(n + sqrtq_asimov)) / ndtr(-n)) for n in SIGMAS]


class FastCalculator:
    """CLs of one patch from the compiled structure's fits."""

    def __init__(self, fitter: Fitter, data: Any) -> None:
        self.fitter, self.data = fitter, np.asarray(data, dtype=float)
        self.poi = fitter.poi
        self.free_fit = fitter.fit(self.data)
        asimov_pars, _ = fitter.fit(self.data, mu=0.0)
        self.asimov = np.asarray(fitter.expected_data(asimov_pars))
        self.free_fit_asimov = fitter.fit(self.asimov)
        self.sqrtq: dict[float, float] = {}
        self.sqrtq_asimov: dict[float, float] = {}

    @property
    def fits(self) -> int:
        return self.fitter.fits

    @property
    def slsqp_fits(self) -> int:
        """Fits that did not converge inside XLA and were repeated with SLSQP."""
        return self.fitter.slsqp_fits

    def _sqrtq(self, mu: float, data: Any, free: tuple[np.ndarray, float]) -> float:
        _, fixed_nll = self.fitter.fit(data, mu=mu)
        return math.sqrt(qtilde(fixed_nll, free[1], float(free[0][self.poi]), mu))

    def asimov_sqrtq(self, mu: float) -> float:
        if mu not in self.sqrtq_asimov:
            self.sqrtq_asimov[mu] = self._sqrtq(mu, self.asimov, self.free_fit_asimov)
        return self.sqrtq_asimov[mu]

    def observed(self, mu: float) -> float:
        if mu not in self.sqrtq:
            self.sqrtq[mu] = self._sqrtq(mu, self.data, self.free_fit)
        return cls_observed(self.sqrtq[mu], self.asimov_sqrtq(mu))

    def expected(self, mu: float) -> list[float]:
        return cls_expected(self.asimov_sqrtq(mu))


class PyhfCalculator:
    """CLs from ``pyhf.infer.hypotest``, for structures the fast path refused."""

    def __init__(self, model: pyhf.pdf.Model, data: Any) -> None:
        self.model, self.data = model, data
        self.values: dict[float, tuple[float, list[float]]] = {}
        self.fits = 0
        self.slsqp_fits = 0

    def _hypotest(self, mu: float) -> tuple[float, list[float]]:
        if mu not in self.values:
            observed, expected = pyhf.infer.hypotest(
                mu, self.data, self.model, test_stat="qtilde", return_expected_set=True
            )
            self.fits += 5
            self.slsqp_fits += 5
            self.values[mu] = (float(observed), [float(v) for v in expected])
        return self.values[mu]

    def observed(self, mu: float) -> float:
        return self._hypotest(mu)[0]

    def expected(self, mu: float) -> list[float]:
        return self._hypotest(mu)[1]
