"""How results are shown: a table for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def result_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="CLs at mu = 1 and 95 % CL upper limits on mu")
    for column in (
        "point",
        "status",
        "CLs obs",
        "CLs exp (-1s, med, +1s)",
        "mu_up obs",
        "mu_up exp (-1s, med, +1s)",
        "fit",
    ):
        table.add_column(column)
    for row in rows:
        exp = row.get("cls_exp") or [None] * 5
        mexp = row.get("mu_up_exp") or [None] * 5
        table.add_row(
            row["point"],
            row["status"],
            fmt(row.get("cls_obs")),
            f"{fmt(exp[1])}, {fmt(exp[2])}, {fmt(exp[3])}",
            fmt(row.get("mu_up_obs")),
            f"{fmt(mexp[1])}, {fmt(mexp[2])}, {fmt(mexp[3])}",
            row.get("fit_status") or row.get("error", "")[:60],
        )
    return table


def print_table(rows: list[dict[str, Any]]) -> None:
    # Not a terminal (a pipe, a log): wide enough that numbers never wrap.
    width = None if sys.stdout.isatty() else 140
    Console(file=sys.stdout, width=width).print(result_table(rows))


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=1, sort_keys=False) + "\n")
