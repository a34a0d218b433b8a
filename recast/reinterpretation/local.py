"""`recast run`: one point, here and now, on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recast.catalogue.loader import file_fields
from recast.catalogue.models import Analysis
from recast.catalogue.selectors import analysis_get
from recast.core.errors import InvalidInput
from recast.reinterpretation import execution
from recast.reinterpretation.inputs import Uploads, check_point, signal_metadata
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


def given_inputs(
    analysis: Analysis, pairs: list[tuple[str, Any]]
) -> tuple[dict[str, Any], Uploads, str]:
    """Inputs from the command line (a Path is a file to read), and a name for
    the point: the first file's stem."""
    lists = file_fields(analysis.input_schema)
    inputs: dict[str, Any] = {}
    uploads: Uploads = {}
    name = ""
    for key, value in pairs:
        if key in inputs or (key in uploads and not lists.get(key)):
            raise InvalidInput(f"$.{key}: given twice")
        if not isinstance(value, Path):
            inputs[key] = value
            continue
        try:
            content = value.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"$.{key}: cannot read {value} ({exc.strerror})"
            ) from None
        name = name or value.stem
        if lists.get(key):
            listed = uploads.setdefault(key, [])
            assert isinstance(listed, list)
            listed.append(content)
        else:
            uploads[key] = content
    return inputs, uploads, name


def run_locally(
    slug: str,
    signal: Path | None = None,
    patch: str | None = None,
    example: bool = False,
    use_cache: bool = True,
    given: list[tuple[str, Any]] | None = None,
    name: str = "",
) -> dict[str, Any]:
    analysis = analysis_get(slug)
    if (signal or patch) and analysis.kind != Analysis.Kind.PUBLIC_LIKELIHOOD:
        names = ", ".join(analysis.input_schema.get("properties", {}))
        raise InvalidInput(
            f"'{slug}' is not a public-likelihood analysis; give its inputs "
            f"({names}) with --input KEY=VALUE"
        )
    uploads: Uploads
    if given:
        inputs, uploads, default = given_inputs(analysis, given)
    else:
        inputs, files, default = point_inputs(
            analysis.example_inputs, signal, patch, example
        )
        uploads = dict(files)
        if example:
            # The example is named as in its reference result.
            default = str(analysis.reference_result.get("point") or "")
    point = check_point(analysis, inputs, uploads, name or default)

    request = request_submit(analysis, [point], enqueue_runs=False, use_cache=use_cache)
    run = request.runs.get()
    execution.run_execute(str(run.id))
    run.refresh_from_db()
    return run_summary(run)
