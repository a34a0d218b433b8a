"""The portal's SVG plots: what they draw from, when they refuse, escaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recast.portal import plots

EVIL = "<script>alert(1)</script>&$x$"


def rows(points: list[tuple[float, float, float]], x: str = "m_stop") -> list[Any]:
    return [
        {
            "model_parameters": {x: a, "m_lsp": b},
            "cls_obs": cls,
            "cls_exp": [cls * f for f in (0.2, 0.5, 1.0, 2.0, 4.0)],
        }
        for a, b, cls in points
    ]


def test_the_contour_is_drawn_over_the_first_two_numeric_parameters() -> None:
    drawn = plots.contour(
        rows([(450, 0, 0.001), (650, 0, 0.2), (550, 300, 0.01)]), "demo"
    )

    assert drawn.lstrip().startswith("<?xml")
    assert "m_stop" in drawn and "m_lsp" in drawn
    assert "observed (CLs = 0.05)" in drawn and "expected ±1σ" in drawn
    assert "<style" not in drawn


def test_a_contour_needs_three_points_off_one_line() -> None:
    with pytest.raises(plots.NoContour) as too_few:
        plots.contour(rows([(450, 0, 0.001), (650, 0, 0.2)]), "")
    with pytest.raises(plots.NoContour) as on_a_line:
        plots.contour(rows([(450, 0, 0.001), (550, 0, 0.02), (650, 0, 0.2)]), "")

    assert str(too_few.value) == (
        "an exclusion contour needs at least three finished points; this scan has 2"
    )
    assert str(on_a_line.value) == (
        "the points lie on one line, so no contour can be drawn between them"
    )


def test_points_without_numbers_are_left_out_of_the_contour() -> None:
    given = rows([(450, 0, 0.001), (650, 0, 0.2), (550, 300, 0.01)])
    given.append({"model_parameters": {"m_stop": 700, "m_lsp": 50}, "cls_obs": None})

    with pytest.raises(plots.NoContour, match="this scan has 2"):
        plots.contour([*given[:2], given[3]], "")
    assert plots.contour(given, "")


def test_labels_and_titles_with_markup_are_escaped() -> None:
    drawn = plots.contour(
        rows([(450, 0, 0.001), (650, 0, 0.2), (550, 300, 0.01)], x=EVIL), EVIL
    )

    assert "<script" not in drawn
    assert drawn.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;$x$") == 2


def test_the_scan_over_mu_is_found_in_a_steps_published_fits(tmp_path: Path) -> None:
    scan = {"mu": [0, 1], "cls_obs": [1, 0.01], "cls_exp": [[1] * 5, [0.1] * 5]}
    fits = tmp_path / "outputs" / "fit" / "fits.json"
    fits.parent.mkdir(parents=True)
    fits.write_text(json.dumps({"fits": [{"point": "a", "scan": scan}]}))
    (tmp_path / "outputs" / "fit" / "broken.json").write_text("{")

    found = plots.point_scan(tmp_path, "a")

    assert found is not None and found["scan"] == scan
    assert plots.point_scan(tmp_path, "b") is None
    assert "CLs = 0.05" in plots.brazil({**found, "mu_up_obs": 0.5}, EVIL)
