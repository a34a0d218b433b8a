"""Run every benchmark, or those named: ``python -m benchmarks [NAME ...]``.

Each result is also written to ``var/bench/<name>.json`` for docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.report import show

RESULTS = Path(__file__).resolve().parent.parent / "var" / "bench"


def available() -> list[str]:
    package = Path(__file__).resolve().parent
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(package)])
        if info.name.startswith("bench_")
    )


def main(names: list[str]) -> int:
    known = available()
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return 2

    for name in names or known:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        show(module.main(), RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
