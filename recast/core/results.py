"""Reading and comparing result documents (specs/result/v1), for the runs, the
reproducibility gate and the re-run from an archive alike. No Django models."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

QUANTITIES = ("cls_obs", "cls_exp", "mu_up_obs", "mu_up_exp")
SIGMA_NAMES = ["-2 sigma", "-1 sigma", "median", "+1 sigma", "+2 sigma"]


def point_result(summarise_outputs: Any, point: str) -> dict[str, Any] | None:
    """The result of ``point`` in what the summarise step published, or None
    when the step published no results file or no result for that point."""
    path = Path((summarise_outputs or {}).get("results", ""))
    if not path.is_file():
        return None
    for result in json.loads(path.read_text())["results"]:
        if result["point"] == point:
            return dict(result)
    return None


def flat(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, list):
        return [
            (f"{name} ({SIGMA_NAMES[i] if len(value) == 5 else i})", v)
            for i, v in enumerate(value)
        ]
    return [(name, value)]


def relative(want: Any, got: Any) -> float:
    if want is None or got is None:
        return 0.0 if want is got else math.inf
    if not want:
        return 0.0 if got == want else math.inf
    return float(abs(got - want) / abs(want))


def compare(
    expected: dict[str, Any], obtained: dict[str, Any], tolerance: dict[str, float]
) -> list[dict[str, Any]]:
    """One entry per quantity (each expected value on its own), with its
    relative deviation and whether it is within the tolerance."""
    rel_tol, abs_tol = tolerance.get("relative", 1e-4), tolerance.get("absolute", 0.0)
    rows = []
    for key in QUANTITIES:
        for (name, want), (_, got) in zip(
            flat(key, expected.get(key)), flat(key, obtained.get(key)), strict=True
        ):
            if want is None or got is None:
                ok = want is got
            else:
                ok = math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
            rows.append(
                {
                    "quantity": name,
                    "expected": want,
                    "obtained": got,
                    "relative": relative(want, got),
                    "ok": ok,
                }
            )
    return rows


def largest_deviations(
    expected: dict[str, Any], obtained: dict[str, Any]
) -> dict[str, float]:
    """The largest relative deviation of each quantity, over its values."""
    rows = compare(expected, obtained, {})
    return {
        key: max(r["relative"] for r in rows if r["quantity"].split(" (")[0] == key)
        for key in QUANTITIES
    }
