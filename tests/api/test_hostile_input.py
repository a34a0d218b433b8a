"""The hostile-input corpus: each input gets a 4xx whose message names the
problem, and nothing is persisted (no request, no run, no stored file)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from recast.catalogue.models import Analysis
from recast.reinterpretation.models import Request, Run
from recast.storage.models import Blob
from tests.conftest import DEMO, WORKFLOWS

EXAMPLE = WORKFLOWS / DEMO / "example" / "stop_650_100.json"
Send = Callable[[APIClient], Any]


def example(change: Callable[[Any], None] = lambda signal: None) -> bytes:
    signal = json.loads(EXAMPLE.read_text())
    change(signal)
    return json.dumps(signal).encode()


def as_file(content: bytes, name: str = "signal.json") -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def post_json(body: Any) -> Send:
    return lambda c: c.post("/api/v1/requests/", body, format="json")


def post_raw(text: str) -> Send:
    return lambda c: c.post("/api/v1/requests/", text, content_type="application/json")


def post_signal(content: bytes, name: str = "signal.json") -> Send:
    return lambda c: c.post(
        "/api/v1/requests/",
        {"analysis": DEMO, "signal": as_file(content, name)},
        format="multipart",
    )


def post_patchset(document: Any) -> Send:
    content = json.dumps(document).encode()
    return lambda c: c.post(
        "/api/v1/requests/",
        {"analysis": DEMO, "patchset": as_file(content, "patchset.json")},
        format="multipart",
    )


def without_poi(signal: Any) -> None:
    for operation in signal["patch"]:
        operation["value"]["modifiers"] = [
            m for m in operation["value"]["modifiers"] if m["name"] != "mu_SIG"
        ]


def with_value(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(signal: Any) -> None:
        target = signal
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def patchset_of(*patches: Any) -> dict[str, Any]:
    signal = json.loads(EXAMPLE.read_text())
    metadata = {
        "name": "mine",
        "labels": ["m_stop", "m_lsp"],
        "digests": signal["metadata"]["digests"],
        "description": "",
        "references": {},
    }
    return {"metadata": metadata, "patches": list(patches), "version": "1.0.0"}


def good_patch(name: str) -> dict[str, Any]:
    signal = json.loads(EXAMPLE.read_text())
    return {"metadata": {"name": name, "values": [650, 100]}, "patch": signal["patch"]}


def misfit_patch(name: str) -> dict[str, Any]:
    operation = {"op": "add", "path": "/channels/9/samples/-", "value": {}}
    return {"metadata": {"name": name, "values": [1, 2]}, "patch": [operation]}


@dataclass
class Case:
    send: Send
    status: int
    message: str  # exact, or a prefix when it ends with "…"


CORPUS: dict[str, Case] = {
    "malformed JSON": Case(post_raw("{not json"), 400, "JSON parse error…"),
    "a body that is not an object": Case(
        post_json([1, 2]),
        400,
        "$: the body must be an object with 'analysis' and one source of points",
    ),
    "no analysis": Case(
        post_json({"scan": "*"}), 400, "$.analysis: required: the slug of the analysis"
    ),
    "inputs of the wrong type": Case(
        post_json({"analysis": DEMO, "inputs": 5}),
        400,
        "$: the inputs of a point must be a JSON object",
    ),
    "an unknown input field": Case(
        post_json({"analysis": DEMO, "inputs": {"patch": "stop_450_0", "x": 1}}),
        400,
        "inputs: $: …",
    ),
    "patches that are not names": Case(
        post_json({"analysis": DEMO, "patches": [1, 2]}),
        400,
        "$.patches: must be a list of patch names",
    ),
    "a scan of zero points": Case(
        post_json({"analysis": DEMO, "points": []}),
        400,
        "$.points: a request needs at least one point",
    ),
    "a scan of 100,000 points": Case(
        post_json(
            {"analysis": DEMO, "patches": ["stop_450_0"] * 100_000},
        ),
        400,
        "$.patches: a request may have at most 10000 points; this one has 100000",
    ),
    "a patchset of zero patches": Case(
        post_patchset(patchset_of()),
        400,
        "$.patchset: not a pyhf patchset with at least one patch",
    ),
    "a signal that is not UTF-8": Case(
        post_signal(b"\xff\xfe\x00[not text]"), 400, "$.signal: not valid JSON (…"
    ),
    "a patch for another workspace": Case(
        post_signal(
            example(with_value(("metadata", "digests"), {"sha256": "ab" * 32}))
        ),
        400,
        "$.signal: this patch was made for another workspace (its "
        "metadata.digests.sha256 is abababababab…, the background-only workspace "
        "of 'demo-stop-1l' is 1f340c8de870…)",
    ),
    "a patch without signal": Case(
        post_signal(example(without_poi)),
        400,
        "$.signal: the patch adds no sample with the parameter of interest "
        "'mu_SIG'; a signal sample must carry a normfactor modifier of that name",
    ),
    "NaN in a histogram": Case(
        post_signal(example(with_value(("patch", 1, "value", "data", 0), math.nan))),
        400,
        "$.signal: the patch holds NaN or infinity at /patch/1/value/data/0; every "
        "yield and uncertainty must be a finite number",
    ),
    "infinity in an uncertainty": Case(
        post_signal(
            example(
                with_value(
                    ("patch", 0, "value", "modifiers", 1, "data"), [math.inf] * 3
                )
            )
        ),
        400,
        "$.signal: the patch holds NaN or infinity at "
        "/patch/0/value/modifiers/1/data/0; every yield and uncertainty must be a "
        "finite number",
    ),
    "a bad patch in an uploaded patchset": Case(
        post_patchset(patchset_of(good_patch("a"), misfit_patch("b"))),
        400,
        "$.patchset.patches[1]: the patch does not apply…",
    ),
    "an oversized upload": Case(
        post_signal(b"[" + b" " * 60_000_000 + b"]"),
        413,
        "$.signal: the file is 60000002 bytes; the limit is 52428800 bytes",
    ),
    "a signal sent as text, not as a file": Case(
        lambda c: c.post(
            "/api/v1/requests/",
            {"analysis": DEMO, "signal": "[]"},
            format="multipart",
        ),
        400,
        "$.signal: not received as a file: send it as a multipart file part with a "
        "file name (a file name that is not UTF-8 is not understood), or give "
        "sha256:<digest> of an upload in 'inputs'",
    ),
    "an empty upload": Case(
        lambda c: c.post(
            "/api/v1/uploads/", {"file": as_file(b"")}, format="multipart"
        ),
        400,
        "$.file: the file is empty",
    ),
    "a page offset that is not a number": Case(
        lambda c: c.get("/api/v1/requests/?offset=null"),
        400,
        "$.offset: 'null' is not a whole number",
    ),
    "a page limit out of range": Case(
        lambda c: c.get("/api/v1/analyses/?limit=0"),
        400,
        "$.limit: 0 is out of range: from 1 to 1000",
    ),
    "a path no endpoint has": Case(
        lambda c: c.get("/api/v1/analyses/<script>/"),
        404,
        "no API endpoint at /api/v1/analyses/<script>/ (see /api/v1/docs/)",
    ),
}


def persisted() -> tuple[int, int, int]:
    return Request.objects.count(), Run.objects.count(), Blob.objects.count()


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_input_is_refused_and_nothing_is_persisted(
    demo: Analysis, as_alice: APIClient, queued: list[str], name: str
) -> None:
    case = CORPUS[name]
    before = persisted()

    response = case.send(as_alice)

    body = response.json()
    assert response.status_code == case.status, body
    if case.message.endswith("…"):
        assert body["message"].startswith(case.message[:-1]), body["message"]
    else:
        assert body["message"] == case.message
    assert persisted() == before
    assert queued == []


def test_a_file_name_that_is_not_utf8_is_refused_with_the_reason(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    boundary = "recastboundary"
    content = example()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="analysis"\r\n\r\n'
        f"{DEMO}\r\n--{boundary}\r\n"
    ).encode() + (
        b'Content-Disposition: form-data; name="signal"; filename="\xff\xfe<b>.json"'
        b"\r\nContent-Type: application/json\r\n\r\n"
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    token = as_alice._credentials["HTTP_AUTHORIZATION"]
    before = persisted()

    response = Client().post(
        "/api/v1/requests/",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
        HTTP_AUTHORIZATION=token,
    )

    assert response.status_code == 400
    assert response.json()["message"] == (
        "give exactly one of inputs, points, patches, scan, signal, patchset (got "
        "none; a multipart part whose field or file name cannot be read, such as a "
        "file name that is not UTF-8, is dropped)"
    )
    assert persisted() == before


def test_markup_in_a_point_name_is_made_safe(
    demo: Analysis, as_alice: APIClient, queued: list[str]
) -> None:
    content = example(with_value(("metadata", "name"), "<script>alert(1)</script>"))

    response = post_signal(content, "<img src=x onerror=alert(1)>.json")(as_alice)

    assert response.status_code == 201, response.json()
    assert response.json()["runs"][0]["point"] == "script_alert_1_script"
