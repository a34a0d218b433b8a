"""`recast run`: one point, here and now, on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recast.catalogue.selectors import analysis_get
from recast.core.errors import InvalidInput
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import check_point, signal_metadata
from recast.reinterpretation.selectors import run_summary
from recast.reinterpretation.services import request_submit


def point_inputs(
    example_inputs: dict[str, Any],
    signal: Path | None,
    patch: str | None,
    example: bool,
) -> tuple[dict[str, Any], dict[str, bytes], str]:
    if example:
        if not example_inputs:
            raise InvalidInput("this analysis has no example inputs")
        return dict(example_inputs), {}, ""
    if patch:
        return {"patch": patch}, {}, ""
    assert signal is not None
    content = signal.read_bytes()
    name = str(signal_metadata(content, "signal").get("name") or signal.stem)
    return {}, {"signal": content}, name


def run_locally(
    slug: str,
    signal: Path | None = None,
    patch: str | None = None,
    example: bool = False,
    use_cache: bool = True,
) -> dict[str, Any]:
    analysis = analysis_get(slug)
    inputs, uploads, name = point_inputs(
        analysis.example_inputs, signal, patch, example
    )
    point = check_point(analysis, inputs, uploads, name)

    request = request_submit(analysis, [point], enqueue_runs=False, use_cache=use_cache)
    run = request.runs.get()
    execution.run_execute(str(run.id))
    run.refresh_from_db()
    return run_summary(run)
