"""The portal's pages: parse the request, call the services and selectors the
API uses, render a template. Live progress comes from the JSON API, polled by
frontend/static/portal/portal.js; every page also works without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from recast.accounts.models import ApiToken
from recast.accounts.services import token_create, token_revoke
from recast.catalogue.models import Analysis
from recast.catalogue.selectors import analysis_get, analysis_list, analysis_search
from recast.core.errors import NotFound, RecastError
from recast.credentials import selectors as credential_selectors
from recast.credentials import services as credential_services
from recast.engine import graph
from recast.portal import plots
from recast.portal.forms import (
    CREDENTIALS,
    POINT,
    CredentialForm,
    SubmitForm,
    TokenForm,
)
from recast.reinterpretation import selectors
from recast.reinterpretation.inputs import Uploads, check_point
from recast.reinterpretation.models import FINISHED, Request, Run, Validation
from recast.reinterpretation.services import request_cancel
from recast.reinterpretation.submission import check_size, points_from

SIGMAS = ["−2σ", "−1σ", "median", "+1σ", "+2σ"]
LOG_TAIL = 200  # lines of a step's log shown on the page


def svg_response(text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="image/svg+xml; charset=utf-8")
    response["Cache-Control"] = "no-store"  # states change while a run goes on
    return response


def not_found(request: HttpRequest, error: NotFound) -> HttpResponse:
    return render(
        request, "portal/not_found.html", {"message": error.message}, status=404
    )


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    given = {
        k: request.GET.get(k, "").strip() for k in ("q", "collaboration", "keyword")
    }
    visible = list(analysis_list(request.user))
    analyses = analysis_search(
        request.user,
        search=given["q"],
        collaboration=given["collaboration"],
        keyword=given["keyword"],
    )
    context = {
        "rows": [catalogue_row(a) for a in analyses],
        "given": given,
        "collaborations": sorted({a.collaboration for a in visible}),
        "keywords": sorted({k for a in visible for k in a.keywords}, key=str.lower),
        "total": len(visible),
    }
    return render(request, "portal/catalogue.html", context)


def catalogue_row(analysis: Analysis) -> dict[str, Any]:
    last = last_validation(analysis)
    return {
        "analysis": analysis,
        "links": reference_links(analysis.references),
        "verdict": last.verdict if last else "",
    }


def last_validation(analysis: Analysis) -> Validation | None:
    finished = analysis.validations.exclude(verdict=Validation.Verdict.PENDING)
    return finished.order_by("-created_at").first()


def reference_links(references: dict[str, Any]) -> list[tuple[str, str]]:
    """Links to the paper and its records, by the identifiers the entry gives."""
    links = []
    if references.get("arxiv"):
        links.append(("arXiv", f"https://arxiv.org/abs/{references['arxiv']}"))
    if references.get("inspire"):
        links.append(
            ("INSPIRE", f"https://inspirehep.net/literature/{references['inspire']}")
        )
    hepdata = references.get("hepdata") or {}
    if hepdata.get("record"):
        links.append(("HEPData", f"https://www.hepdata.net/record/{hepdata['record']}"))
    elif hepdata.get("doi"):
        links.append(("HEPData", f"https://doi.org/{hepdata['doi']}"))
    cap = str(references.get("cap") or "")
    if cap.startswith(("https://", "http://")):  # never a javascript: link
        links.append(("CAP", cap))
    if references.get("doi"):
        links.append(("DOI", f"https://doi.org/{references['doi']}"))
    return links


def numbers_rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Rows of (quantity, CLs, upper limit) for a result document."""
    cls_exp = result.get("cls_exp") or [None] * 5
    mu_exp = result.get("mu_up_exp") or [None] * 5
    rows = [("observed", result.get("cls_obs"), result.get("mu_up_obs"))]
    rows += [
        (f"expected {s}", c, m) for s, c, m in zip(SIGMAS, cls_exp, mu_exp, strict=True)
    ]
    return rows


@require_GET
def analysis_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        analysis = analysis_get(slug, request.user)
    except NotFound as error:
        return not_found(request, error)
    version = analysis.current_workflow()
    context = {
        "analysis": analysis,
        "links": reference_links(analysis.references),
        "version": version,
        "stages": [s.get("name") for s in version.spec.get("stages", [])],
        "form": SubmitForm(analysis, owner=user_of(request)),
        "examples": json.dumps(analysis.example_inputs, indent=2, sort_keys=True),
        "schema": json.dumps(analysis.input_schema, indent=2),
        "reference": numbers_rows(analysis.reference_result),
        "validation": last_validation(analysis),
    }
    return render(request, "portal/analysis.html", context)


@require_GET
def analysis_graph(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        analysis = analysis_get(slug, request.user)
    except NotFound as error:
        return not_found(request, error)
    spec = analysis.current_workflow().spec
    return svg_response(graph.render(spec, title=f"Steps of {analysis.slug}"))


@login_required
@require_http_methods(["GET", "POST"])
def submit(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        analysis = analysis_get(slug, request.user)
    except NotFound as error:
        return not_found(request, error)
    owner = user_of(request)
    if request.method != "POST":
        form = SubmitForm(analysis, initial={"mode": POINT}, owner=owner)
        return render(
            request, "portal/submit.html", {"analysis": analysis, "form": form}
        )

    form = SubmitForm(analysis, request.POST, request.FILES, owner=owner)
    if form.is_valid():
        try:
            points = submitted_points(form, analysis)
            # Checked again by the API's service: one deleted since the form
            # was validated is refused at the field, nothing stored.
            names = credential_services.credential_names_check(
                owner, form.cleaned_data.get(CREDENTIALS)
            )
            created, _ = credential_services.request_accept_using(
                analysis, points, owner, names
            )
        except RecastError as error:
            form.show_error(error)
        else:
            return HttpResponseRedirect(reverse("portal:request", args=[created.id]))
    context = {"analysis": analysis, "form": form}
    return render(request, "portal/submit.html", context, status=400)


def submitted_points(form: SubmitForm, analysis: Analysis) -> list[Any]:
    """The checked points of the form; raises the services' errors."""
    name = form.cleaned_data["name"]
    if form.cleaned_data["mode"] != POINT:
        data, files = form.scan_source()
        return points_from(analysis, data, files)
    inputs, uploads = form.point()
    if not inputs and list(uploads) == ["signal"]:
        # A signal file alone: named by its metadata or its file name, as in the API.
        return points_from(analysis, {"name": name}, uploads)
    for key, (_, content) in uploads.items():
        check_size(key, content)
    contents: Uploads = {key: content for key, (_, content) in uploads.items()}
    return [check_point(analysis, inputs, contents, name)]


def user_of(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


@login_required
@require_GET
def request_list(request: HttpRequest) -> HttpResponse:
    requests = list(selectors.request_list(request.user)[:200])
    rows = []
    for found in requests:
        counts = selectors.status_counts(found)
        done = sum(counts[s] for s in FINISHED)
        rows.append((found, counts, done, sum(counts.values())))
    return render(request, "portal/requests.html", {"rows": rows})


def run_row(run: Run) -> dict[str, Any]:
    summary = selectors.run_summary(run)
    running = next((s.name for s in run.steps.all() if s.status == "running"), "")
    return {"run": run, "summary": summary, "step": running}


def followed_run(runs: list[Run], wanted: str) -> Run | None:
    """The point whose steps the page shows: the one asked for, else the first
    running one, else the first."""
    for run in runs:
        if str(run.id) == wanted:
            return run
    return next((r for r in runs if r.status == "running"), runs[0] if runs else None)


@login_required
@require_GET
def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        found = selectors.request_for(request.user, request_id)
    except NotFound as error:
        return not_found(request, error)
    runs = list(found.runs.prefetch_related("steps").order_by("point"))
    counts = selectors.status_counts(found)
    done = sum(counts[s] for s in FINISHED)
    followed = followed_run(runs, request.GET.get("point", ""))
    context = {
        "found": found,
        "rows": [run_row(run) for run in runs],
        "counts": counts,
        "done": done,
        "finished": found.status in FINISHED,
        "followed": followed,
        "steps": steps_of(followed) if followed else [],
        "contour": contour_reason(found, runs),
        "brazil": single_brazil(found, runs),
        "labels": selectors.parameter_names(runs),
    }
    return render(request, "portal/request.html", context)


@login_required
@require_http_methods(["POST"])
def request_stop(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        found = selectors.request_for(request.user, request_id)
        request_cancel(found)
    except NotFound as error:
        return not_found(request, error)
    except RecastError:
        pass  # it finished meanwhile: the page shows how
    return HttpResponseRedirect(reverse("portal:request", args=[found.id]))


def contour_reason(found: Request, runs: list[Run]) -> str:
    """Empty when the scan's contour can be drawn, else why not."""
    try:
        plots.contour_data([selectors.run_summary(r) for r in runs])
    except plots.NoContour as reason:
        return str(reason) + ("" if found.status in FINISHED else " so far")
    return ""


def single_brazil(found: Request, runs: list[Run]) -> Run | None:
    """The one point of a single-point request, when it has a CLs scan."""
    if found.is_scan or len(runs) != 1 or not runs[0].archive_path:
        return None
    scan = plots.point_scan(Path(runs[0].archive_path), runs[0].point)
    return runs[0] if scan else None


@login_required
@require_GET
def request_contour(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        found = selectors.request_for(request.user, request_id)
        rows = [selectors.run_summary(r) for r in selectors.request_runs(found)]
        drawn = plots.contour(rows, f"{found.analysis.slug}: 95 % CL exclusion")
    except NotFound as error:
        return not_found(request, error)
    except plots.NoContour as reason:
        return not_found(request, NotFound(str(reason)))
    return svg_response(drawn)


def steps_of(run: Run) -> list[dict[str, Any]]:
    """Each step's last attempt, with the tail of its log."""
    latest: dict[str, Any] = {}
    for step in run.steps.order_by("attempt", "id"):
        latest[step.name] = step
    rows = []
    for step in latest.values():
        rows.append({"step": step, "log": log_tail(run, step.name, step.log_path)})
    return rows


def log_tail(run: Run, name: str, live_path: str) -> str:
    """The end of a step's log: the archived copy once there is one."""
    candidates = [Path(live_path)] if live_path else []
    if run.archive_path:
        candidates.insert(0, Path(run.archive_path) / "logs" / f"{name}.log")
    for path in candidates:
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-LOG_TAIL:])
    return ""


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        run = selectors.run_for(request.user, run_id)
    except NotFound as error:
        return not_found(request, error)
    scan = (
        plots.point_scan(Path(run.archive_path), run.point)
        if run.archive_path
        else None
    )
    context = {
        "run": run,
        "found": run.request,
        "summary": selectors.run_summary(run),
        "numbers": numbers_rows(run.result or {}),
        "steps": steps_of(run),
        "finished": run.status in FINISHED,
        "has_brazil": scan is not None,
        "limits_not_requested": limits_not_requested(run.result or {}),
    }
    return render(request, "portal/run.html", context)


def limits_not_requested(result: dict[str, Any]) -> bool:
    fit = result.get("fit")
    return isinstance(fit, dict) and fit.get("limits") == "not_requested"


def step_states(run: Run) -> dict[str, str]:
    latest: dict[str, str] = {}
    for step in run.steps.order_by("attempt", "id"):
        latest[step.name] = step.status
    return latest


@login_required
@require_GET
def run_graph(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        run = selectors.run_for(request.user, run_id)
    except NotFound as error:
        return not_found(request, error)
    spec = run.request.workflow_version.spec
    title = f"Steps of point {run.point}"
    return svg_response(graph.render(spec, states=step_states(run), title=title))


@login_required
@require_GET
def run_brazil(request: HttpRequest, run_id: str) -> HttpResponse:
    try:
        run = selectors.run_for(request.user, run_id)
        fit = (
            plots.point_scan(Path(run.archive_path), run.point)
            if run.archive_path
            else None
        )
        if fit is None:
            raise NotFound(f"run {run.id} has no CLs scan over μ")
    except NotFound as error:
        return not_found(request, error)
    merged = {
        **fit,
        **{k: (run.result or {}).get(k) for k in ("mu_up_obs", "mu_up_exp")},
    }
    return svg_response(plots.brazil(merged, f"{run.point}: CLs against μ"))


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    assert user is not None  # login_required
    form = TokenForm(request.POST or None)
    made = None
    if request.method == "POST" and form.is_valid():
        _, made = token_create(
            user, form.cleaned_data["name"], form.cleaned_data["days"]
        )
        form = TokenForm()
    active = ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by(
        "-created_at"
    )
    context = {"form": form, "tokens": active, "made": made}
    response = render(request, "portal/tokens.html", context)
    response["Cache-Control"] = "no-store"  # the new token is on this page once
    return response


@login_required
@require_http_methods(["POST"])
def token_delete(request: HttpRequest, prefix: str) -> HttpResponse:
    user = user_of(request)
    assert user is not None  # login_required
    try:
        token_revoke(user, prefix)
    except NotFound as error:
        return not_found(request, error)
    return HttpResponseRedirect(reverse("portal:tokens"))


@login_required
@require_http_methods(["GET", "POST"])
def credentials(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    assert user is not None  # login_required
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credential_services.credential_create(
                user,
                form.cleaned_data["name"],
                form.cleaned_data["value"],
                form.cleaned_data["description"],
            )
        except RecastError as error:
            # The service's message starts with the field's JSON path.
            path, _, message = error.message.partition(": ")
            field = path.removeprefix("$.")
            form.add_error(field if field in form.fields else None, message)
        else:
            return HttpResponseRedirect(reverse("portal:credentials"))
    context = {"form": form, "credentials": credential_selectors.credentials_of(user)}
    response = render(request, "portal/credentials.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["POST"])
def credential_delete(request: HttpRequest, name: str) -> HttpResponse:
    user = user_of(request)
    assert user is not None  # login_required
    try:
        credential_services.credential_delete(user, name)
    except NotFound as error:
        return not_found(request, error)
    return HttpResponseRedirect(reverse("portal:credentials"))
