"""Benchmarks of the platform (``make bench``).

Each ``bench_<name>.py`` module defines ``main() -> Report`` and can run alone
(``python -m benchmarks.bench_<name>``). Every benchmark measures its baseline in
the same run and reports ratios against it, never absolute thresholds.
"""
