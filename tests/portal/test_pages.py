"""The portal's pages through Django's test client: what each shows, the
submit form's errors next to their fields, escaping, and who sees what."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from recast.accounts.models import ApiToken
from recast.catalogue.models import Analysis
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request, Run, Status, Step
from recast.reinterpretation.services import request_submit
from tests.conftest import DEMO, WORKFLOWS

EVIL = '<script>alert("x")</script>'
REFERENCE = json.loads((WORKFLOWS / DEMO / "reference.json").read_text())


def html(response: Any) -> str:
    return str(response.content.decode())


def field_error(page: str, field: str) -> str:
    """The error text shown in the label of ``field``."""
    match = re.search(
        rf'id="field-{field}">\s*<(?:label|legend)[^>]*>.*?'
        r'<span class="error" role="alert">(.*?)</span>',
        page,
        re.S,
    )
    return match.group(1) if match else ""


def finished_scan(analysis: Analysis, owner: User, cls: dict[str, float]) -> Request:
    """A scan whose points succeeded with the given CLs (no workflow runs)."""
    points = [check_point(analysis, {"patch": name}) for name in cls]
    request = request_submit(analysis, points, owner=owner, enqueue_runs=False)
    for run in request.runs.all():
        value = cls[run.point]
        result = {
            **REFERENCE,
            "point": run.point,
            "model_parameters": run.model_parameters,
            "cls_obs": value,
            "cls_exp": [value * f for f in (0.2, 0.5, 1.0, 2.0, 4.0)],
            "excluded": value < 0.05,
        }
        Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, result=result)
    Request.objects.filter(pk=request.pk).update(status=Status.SUCCEEDED)
    return request


def test_the_catalogue_lists_the_analyses_with_search_and_filters(
    demo: Analysis, client: Client
) -> None:
    everything = html(client.get("/"))
    found = html(client.get("/", {"q": "top squark", "collaboration": "recast demo"}))
    nothing = html(client.get("/", {"q": "no such words"}))
    by_keyword = html(client.get("/", {"keyword": "stop"}))

    assert demo.title in everything and "1 of 1 analyses" in everything
    assert "Reproducibility: not checked yet" in everything
    assert f'href="/analyses/{DEMO}/"' in found
    assert "0 of 1 analyses" in nothing and "No analysis matches" in nothing
    assert f'href="/analyses/{DEMO}/"' in by_keyword


def test_the_analysis_page_shows_what_the_analysis_needs_and_its_reference(
    demo: Analysis, client: Client
) -> None:
    demo.references = {
        "arxiv": "2101.01234",
        "inspire": 1234,
        "hepdata": {"record": "ins1234"},
        "cap": "javascript:alert(1)",
    }
    demo.save()

    page = html(client.get(f"/analyses/{DEMO}/"))

    assert '<h2 id="h-abstract">Abstract</h2>' in page
    assert 'href="https://arxiv.org/abs/2101.01234"' in page
    assert 'href="https://inspirehep.net/literature/1234"' in page
    assert 'href="https://www.hepdata.net/record/ins1234"' in page
    assert "javascript:" not in page
    assert f'src="/analyses/{DEMO}/graph.svg"' in page
    assert "<td><code>recast/pyhf</code></td><td><code>0.7.6-1</code></td>" in page
    assert 'name="input_signal"' in page and 'name="input_patch"' in page
    assert "&quot;signal&quot;: &quot;sha256:2094a7376f68" in page
    assert '<th scope="row">observed</th><td>0.06761</td><td>1.094</td>' in page
    assert "Not checked yet" in page
    assert "Sign in</a> to submit" in page


def test_the_static_graph_of_an_analysis_is_svg(demo: Analysis, client: Client) -> None:
    response = client.get(f"/analyses/{DEMO}/graph.svg")

    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert 'data-stage="summarise"' in html(response)


def test_submitting_needs_a_sign_in(demo: Analysis, client: Client) -> None:
    response = client.get(f"/analyses/{DEMO}/submit/")

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/analyses/{DEMO}/submit/"


@pytest.mark.django_db(transaction=True)
def test_a_point_named_by_its_patch_is_submitted_and_queued(
    demo: Analysis, signed_in: Client, queued: list[str]
) -> None:
    response = signed_in.post(
        f"/analyses/{DEMO}/submit/", {"mode": "point", "input_patch": "stop_550_100"}
    )

    request = Request.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{request.id}/"
    assert list(request.runs.values_list("point", flat=True)) == ["stop_550_100"]
    assert queued == [str(request.runs.get().id)]


def test_an_unknown_patch_is_shown_next_to_its_field_and_nothing_is_stored(
    demo: Analysis, signed_in: Client, queued: list[str]
) -> None:
    response = signed_in.post(
        f"/analyses/{DEMO}/submit/", {"mode": "point", "input_patch": "stop_1_1"}
    )

    assert response.status_code == 400
    assert field_error(html(response), "input_patch").startswith(
        "$.patch: no patch named &#x27;stop_1_1&#x27; in the patchset of "
        "&#x27;demo-stop-1l&#x27;"
    )
    assert not Request.objects.exists() and queued == []


def test_a_schema_violation_is_shown_next_to_its_field(
    demo: Analysis, signed_in: Client
) -> None:
    response = signed_in.post(
        f"/analyses/{DEMO}/submit/", {"mode": "point", "input_patch": "a b"}
    )

    assert field_error(html(response), "input_patch") == (
        "inputs: $.patch: &#x27;a b&#x27; does not match "
        "&#x27;^[A-Za-z0-9_.+-]{1,200}$&#x27;"
    )


def test_a_point_with_neither_signal_nor_patch_is_refused_above_the_form(
    demo: Analysis, signed_in: Client
) -> None:
    page = html(signed_in.post(f"/analyses/{DEMO}/submit/", {"mode": "point"}))

    assert '<div class="error" role="alert" id="form-errors"><p>inputs: $: ' in page
    assert not Request.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_scan_of_chosen_patches_makes_one_run_per_patch(
    demo: Analysis, signed_in: Client, queued: list[str]
) -> None:
    chosen = ["stop_450_100", "stop_550_100", "stop_550_200"]

    signed_in.post(f"/analyses/{DEMO}/submit/", {"mode": "patches", "patches": chosen})

    request = Request.objects.get()
    assert request.is_scan
    assert sorted(request.runs.values_list("point", flat=True)) == chosen
    assert len(queued) == 3


def test_a_scan_without_a_patch_chosen_says_so_at_the_patches(
    demo: Analysis, signed_in: Client
) -> None:
    page = html(signed_in.post(f"/analyses/{DEMO}/submit/", {"mode": "patches"}))

    assert field_error(page, "patches") == "choose at least one patch for the scan"


def test_a_pattern_that_matches_nothing_is_shown_at_the_pattern(
    demo: Analysis, signed_in: Client
) -> None:
    page = html(
        signed_in.post(f"/analyses/{DEMO}/submit/", {"mode": "scan", "scan": "x*"})
    )

    assert field_error(page, "scan") == (
        "$.scan: no patch of &#x27;demo-stop-1l&#x27; matches &#x27;x*&#x27;"
    )


def test_a_broken_patchset_upload_is_shown_at_the_patchset_field(
    demo: Analysis, signed_in: Client
) -> None:
    upload = SimpleUploadedFile(f"{EVIL}.json", b'{"patches": []}')

    page = html(
        signed_in.post(
            f"/analyses/{DEMO}/submit/", {"mode": "patchset", "patchset": upload}
        )
    )

    assert field_error(page, "patchset") == (
        "$.patchset: not a pyhf patchset with at least one patch"
    )
    assert EVIL not in page


def test_an_uploaded_signal_with_markup_in_its_file_name_is_shown_escaped(
    demo: Analysis, signed_in: Client, queued: list[str]
) -> None:
    signal = (WORKFLOWS / DEMO / "example" / "stop_650_100.json").read_bytes()
    document = json.loads(signal)
    document["metadata"].pop("name", None)
    upload = SimpleUploadedFile(
        "<img src=x onerror=alert(1)>.json", json.dumps(document).encode()
    )

    signed_in.post(
        f"/analyses/{DEMO}/submit/", {"mode": "point", "input_signal": upload}
    )
    request = Request.objects.get()
    page = html(signed_in.get(f"/requests/{request.id}/"))

    assert "<img src=x" not in page
    assert request.runs.get().point == "img_src_x_onerror_alert_1"


def test_markup_in_a_title_is_escaped_on_every_page(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    Analysis.objects.filter(pk=demo.pk).update(title=EVIL, abstract=EVIL)
    request = finished_scan(demo, alice, {"stop_450_0": 0.01})
    run = request.runs.get()

    pages = [
        "/",
        f"/analyses/{DEMO}/",
        f"/analyses/{DEMO}/submit/",
        "/requests/",
        f"/requests/{request.id}/",
        f"/runs/{run.id}/",
    ]
    for url in pages:
        page = html(signed_in.get(url))
        assert EVIL not in page, url
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html(
        signed_in.get(f"/analyses/{DEMO}/")
    )


def test_pages_carry_no_inline_script_or_style(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    request = finished_scan(demo, alice, {"stop_450_0": 0.01})
    for url in ["/", f"/analyses/{DEMO}/", f"/requests/{request.id}/", "/tokens/"]:
        page = html(signed_in.get(url))
        scripts = re.findall(r"<script[^>]*>", page)
        assert scripts == ['<script src="/static/portal/portal.js" defer>'], url
        assert " style=" not in page and "<style" not in page, url


def test_my_requests_lists_only_my_own(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    mine = finished_scan(demo, alice, {"stop_450_0": 0.01})
    bob = User.objects.create_user("bob")
    theirs = finished_scan(demo, bob, {"stop_550_0": 0.02})

    page = html(signed_in.get("/requests/"))

    assert f'href="/requests/{mine.id}/"' in page
    assert "<td>1 of 1 finished: 1 succeeded</td>" in page
    assert str(theirs.id) not in page
    assert signed_in.get(f"/requests/{theirs.id}/").status_code == 404


def test_a_finished_scan_shows_its_cls_table_contour_and_downloads(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    request = finished_scan(
        demo,
        alice,
        {
            "stop_450_0": 0.001,
            "stop_450_200": 0.02,
            "stop_650_0": 0.2,
            "stop_650_200": 0.4,
        },
    )

    page = html(signed_in.get(f"/requests/{request.id}/"))
    contour = signed_in.get(f"/requests/{request.id}/contour.svg")

    assert 'data-finished="true"' in page
    assert '<progress id="progress" max="4" value="4">' in page
    assert re.search(r">stop_450_0</a></th>\s*<td>450</td><td>0</td>", page)
    assert "<td>0.001</td>" in page and "<td>yes</td>" in page
    assert f'src="/requests/{request.id}/contour.svg"' in page
    assert f'href="/api/v1/requests/{request.id}/results/?as=csv"' in page
    assert f'href="/api/v1/requests/{request.id}/export/?to=hepdata"' in page
    assert contour["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert "<style" not in html(contour) and "m_stop" in html(contour)


def test_a_scan_on_one_line_says_why_it_has_no_contour(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    request = finished_scan(
        demo, alice, {"stop_450_0": 0.001, "stop_550_0": 0.02, "stop_650_0": 0.2}
    )

    page = html(signed_in.get(f"/requests/{request.id}/"))

    assert "the points lie on one line, so no contour can be drawn between them" in page
    assert signed_in.get(f"/requests/{request.id}/contour.svg").status_code == 404


def test_a_running_point_shows_each_steps_state_on_its_graph_and_its_log(
    demo: Analysis, alice: User, signed_in: Client, tmp_path: Path
) -> None:
    points = [check_point(demo, {"patch": "stop_450_0"})]
    request = request_submit(demo, points, owner=alice, enqueue_runs=False)
    run = request.runs.get()
    Run.objects.filter(pk=run.pk).update(status=Status.RUNNING)
    log = tmp_path / "fit.log"
    log.write_text(f"fitting {EVIL}\n")
    Step.objects.create(run=run, attempt=1, name="patch", status="succeeded")
    Step.objects.create(
        run=run, attempt=1, name="fit", status="running", log_path=str(log)
    )

    page = html(signed_in.get(f"/requests/{request.id}/"))
    drawn = html(signed_in.get(f"/runs/{run.id}/graph.svg"))
    point_page = html(signed_in.get(f"/runs/{run.id}/"))

    assert 'data-finished="false"' in page
    assert '<span class="muted" data-field="step">fit</span>' in page
    assert f'src="/runs/{run.id}/graph.svg"' in page
    assert "fitting &lt;script&gt;" in page and "fitting &lt;script&gt;" in point_page
    assert 'class="stage stage-step state-succeeded" data-stage="patch"' in drawn
    assert 'class="stage stage-step state-running" data-stage="fit"' in drawn
    assert 'class="stage stage-step state-pending" data-stage="plot"' in drawn


def test_a_point_page_shows_its_numbers_and_brazil_plot(
    demo: Analysis, alice: User, signed_in: Client, tmp_path: Path
) -> None:
    request = finished_scan(demo, alice, {"stop_450_0": 0.01})
    run = request.runs.get()
    fits = tmp_path / "archive" / "outputs" / "fit" / "fits.json"
    fits.parent.mkdir(parents=True)
    scan = {
        "mu": [0.0, 0.5, 1.0, 2.0],
        "cls_obs": [1.0, 0.3, 0.01, 0.001],
        "cls_exp": [[1.0] * 5, [0.1, 0.2, 0.3, 0.4, 0.5], [0.01, 0.02, 0.05, 0.1, 0.2],
                    [0.0, 0.001, 0.01, 0.02, 0.05]],
    }  # fmt: skip
    fits.write_text(json.dumps({"fits": [{"point": run.point, "scan": scan}]}))
    Run.objects.filter(pk=run.pk).update(archive_path=str(fits.parents[2]))

    page = html(signed_in.get(f"/runs/{run.id}/"))
    request_page = html(signed_in.get(f"/requests/{request.id}/"))
    plot = signed_in.get(f"/runs/{run.id}/brazil.svg")

    assert "<strong>Excluded</strong> at 95 % CL" in page
    assert '<th scope="row">observed</th><td>0.01</td>' in page
    assert f'src="/runs/{run.id}/brazil.svg"' in page
    assert f'src="/runs/{run.id}/brazil.svg"' in request_page  # its only point
    assert plot["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert "CLs = 0.05" in html(plot) and "<style" not in html(plot)


def test_a_point_without_a_scan_over_mu_has_no_brazil_plot(
    demo: Analysis, alice: User, signed_in: Client
) -> None:
    run = finished_scan(demo, alice, {"stop_450_0": 0.01}).runs.get()

    assert "brazil.svg" not in html(signed_in.get(f"/runs/{run.id}/"))
    assert signed_in.get(f"/runs/{run.id}/brazil.svg").status_code == 404


def test_a_token_is_shown_once_and_can_be_revoked(
    alice: User, signed_in: Client
) -> None:
    made = html(signed_in.post("/tokens/", {"name": "laptop", "days": 30}))
    token = re.search(r'value="(rc_[^"]+)"', made)
    row = ApiToken.objects.get(user=alice)
    listed = html(signed_in.get("/tokens/"))

    revoked = signed_in.post(f"/tokens/{row.prefix}/revoke/")

    assert token is not None and token.group(1).startswith(f"rc_{row.prefix}_")
    assert token.group(1) not in listed and f"<code>{row.prefix}</code>" in listed
    assert revoked.status_code == 302
    assert f"<code>{row.prefix}</code>" not in html(signed_in.get("/tokens/"))
    assert signed_in.post(f"/tokens/{row.prefix}/revoke/").status_code == 404


def test_a_bad_token_lifetime_is_shown_at_its_field(
    alice: User, signed_in: Client
) -> None:
    page = html(signed_in.post("/tokens/", {"name": "x", "days": 0}))

    assert field_error(page, "days") == (
        "Ensure this value is greater than or equal to 1."
    )
    assert not ApiToken.objects.exists()


def test_signing_in_leads_to_the_catalogue(alice: User, client: Client) -> None:
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "wonderland-1865"}
    )

    assert response["Location"] == "/"
    assert "<span>alice</span>" in html(client.get("/"))


@pytest.mark.parametrize("url", ["/analyses/nope/", "/requests/nope/", "/runs/nope/"])
def test_a_missing_page_says_what_is_missing(
    url: str, demo: Analysis, signed_in: Client
) -> None:
    response = signed_in.get(url)

    assert response.status_code == 404
    assert "<h1>Not found</h1>" in html(response)
