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

yadage also validates the whole spec against its JSON schemas at the start
of every run, loading the schema files afresh each time (about 30 ms here, a
tenth of a trivial run). Validation is a function of the spec alone, so a
spec that passed once (the same JSON, by its sha256) is not validated again;
a spec that fails is validated, and fails, every time.

``apply`` wraps these functions in bounded memos, once; it changes no
result (the engine's tests run with it, and so does the benchmark's yadage
baseline when it runs in the same process).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from typing import Any

import jq
import jsonpath_rw
from yadage import workflow_loader

MEMO_SIZE = 1024
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    jq.jq = memoised(jq.jq)
    jsonpath_rw.parse = memoised(jsonpath_rw.parse)
    workflow_loader.validate = validated_once(workflow_loader.validate)
    _applied = True


def validated_once(validate: Any) -> Any:
    """``validate`` skipped for a spec that already passed it in this process."""
    passed: set[str] = set()
    lock = threading.Lock()

    @functools.wraps(validate)
    def checked(data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            text = json.dumps([data, args, kwargs], sort_keys=True)
        except (TypeError, ValueError):
            return validate(data, *args, **kwargs)
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in passed:
            return None
        validate(data, *args, **kwargs)  # raises on an invalid spec
        with lock:
            if len(passed) >= MEMO_SIZE:
                passed.clear()
            passed.add(key)
        return None

    return checked


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
