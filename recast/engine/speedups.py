"""Compile yadage's queries once per process, not once per use.

yadage and packtivity compile the same few jq programs and JSONPath
expressions again on every scheduling pass: ``jq.jq(text)`` compiles a jq
program, and ``jsonpath_rw.parse(text)`` builds its yacc parser tables anew.
Measured here, that is about 90 % of the time yadage takes to drive a
workflow of trivial steps (5.5 s against 0.4 s for three steps on a loaded
machine), and every run pays it, even one whose steps all come from the step
cache. Both compile to objects that are never modified afterwards (a JSONPath
is a tree of plain nodes; a jq 1.13 program keeps a locked pool of jq states,
so threads may share it), so one compiled object per text serves every run.

``apply`` wraps both functions in a bounded memo, once; it changes no
result (the engine's tests run with it, and so does the benchmark's yadage
baseline when it runs in the same process).
"""

from __future__ import annotations

import functools
from typing import Any

import jq
import jsonpath_rw

MEMO_SIZE = 1024
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    jq.jq = memoised(jq.jq)
    jsonpath_rw.parse = memoised(jsonpath_rw.parse)
    _applied = True


def memoised(compile_text: Any) -> Any:
    """``compile_text`` remembered by its arguments; called afresh when they
    cannot be hashed."""
    cached = functools.lru_cache(maxsize=MEMO_SIZE)(compile_text)

    @functools.wraps(compile_text)
    def compiled(*args: Any, **kwargs: Any) -> Any:
        try:
            return cached(*args, **kwargs)
        except TypeError:
            return compile_text(*args, **kwargs)

    return compiled
