"""What a benchmark reports: one JSON line on stdout, then a table for people."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Report:
    """The figures of one benchmark.

    ``figures`` holds the measurements (seconds, bytes, counts); ``targets`` maps
    a figure's name to a sentence saying what it should be, and ``met`` to
    whether it is; ``notes`` says how the baseline was measured (for example,
    extrapolated from a sample of points).
    """

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    met: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "figures": self.figures,
            "targets": self.targets,
            "met": self.met,
            "notes": self.notes,
        }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def show(report: Report, results_dir: Path | None = None) -> None:
    """Print the JSON line and the table; keep the document under ``results_dir``."""
    document = report.document()
    print(json.dumps(document, sort_keys=True), flush=True)

    table = Table(title=report.name)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    for key, value in report.figures.items():
        verdict = {True: " (met)", False: " (NOT met)"}.get(report.met.get(key), "")
        table.add_row(key, format_value(value), report.targets.get(key, "") + verdict)
    console = Console(stderr=True)
    console.print(table)
    for note in report.notes:
        console.print(f"  {note}")

    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        target = results_dir / f"{report.name}.json"
        target.write_text(json.dumps(document, indent=1, sort_keys=True))


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
