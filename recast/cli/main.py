"""``recast``: the platform's command line.

Local commands (``run``, ``catalogue``, ``archive``) work on the embedded
defaults with no server. Exit codes: 0 success, 1 a run failed, 2 bad usage or
input rejected. Machine output goes to stdout, messages to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from recast.cli import notify, remote
from recast.cli.client import Client, ClientError, config_write, server_configured
from recast.cli.credentials import credentials
from recast.cli.local import django_setup
from recast.cli.output import print_json, print_table
from recast.core.errors import RecastError

EXIT_FAILED = 1
EXIT_USAGE = 2


class Group(click.Group):
    """Domain errors become one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecastError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(EXIT_USAGE)
        except ClientError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED)


@click.group(cls=Group)
@click.version_option(package_name="recast")
def cli() -> None:
    """Preserve particle-physics analyses and reinterpret them."""


@cli.group(cls=Group)
def catalogue() -> None:
    """The catalogue of preserved analyses."""


@catalogue.command("load")
@click.argument("slugs", nargs=-1)
@click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), help="workflows folder"
)
def catalogue_load(slugs: tuple[str, ...], root: Path | None) -> None:
    """Check and load analysis folders (all, or the SLUGS named)."""
    django_setup()
    from recast.catalogue.commands import load_and_report

    sys.exit(load_and_report(root, list(slugs)))


@catalogue.command("ls")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def catalogue_ls(as_json: bool) -> None:
    """List the catalogued analyses (of the server, when one is configured)."""
    if server_configured():
        rows = Client().get("analyses/", limit=1000)["results"]
    else:
        rows = local_analyses()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['slug']:30} {row['title']}")


@catalogue.command("show")
@click.argument("slug")
def catalogue_show(slug: str) -> None:
    """Everything about one analysis, as JSON (from the server when configured)."""
    if server_configured():
        print_json(Client().get(f"analyses/{slug}/"))
        return
    django_setup(quiet=True)
    from recast.api.serializers import AnalysisDetailSerializer
    from recast.catalogue.selectors import analysis_get

    print_json(AnalysisDetailSerializer(analysis_get(slug)).data)


def local_analyses() -> list[dict[str, Any]]:
    django_setup(quiet=True)
    from recast.catalogue.selectors import analysis_list

    return [
        {
            "slug": a.slug,
            "title": a.title,
            "collaboration": a.collaboration,
            "kind": a.kind,
        }
        for a in analysis_list()
    ]


@catalogue.command("add-likelihood")
@click.option("--slug", required=True)
@click.option(
    "--bkgonly",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--patchset", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--title")
@click.option("--collaboration", default="unknown")
@click.option("--abstract")
@click.option("--inspire", type=int)
@click.option("--arxiv")
@click.option(
    "--hepdata", "hepdata_doi", help="HEPData DOI, e.g. 10.17182/hepdata.90607"
)
def catalogue_add_likelihood(**options: Any) -> None:
    """Register a published pyhf likelihood under the generic workflow."""
    django_setup()
    from recast.catalogue.likelihood import likelihood_add

    analysis, version = likelihood_add(**options)
    click.echo(
        f"added {analysis.slug} (workflow v{version.number}, {version.digest[:12]})",
        err=True,
    )


def input_pairs(given: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``--input KEY=VALUE`` options: VALUE as JSON when it reads as JSON, else
    as text; ``@PATH`` as the Path of a file."""
    pairs: list[tuple[str, Any]] = []
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--input {item}: write KEY=VALUE")
        if value.startswith("@"):
            pairs.append((key, Path(value[1:])))
            continue
        try:
            pairs.append((key, json.loads(value)))
        except json.JSONDecodeError:
            pairs.append((key, value))
    return pairs


@cli.command("run")
@click.argument("slug")
@click.option(
    "--signal",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="signal patch file",
)
@click.option("--patch", help="name of a patch in the analysis' patchset")
@click.option("--example", is_flag=True, help="run the analysis' example inputs")
@click.option(
    "--input",
    "given",
    multiple=True,
    metavar="KEY=VALUE",
    help="an input of the analysis' input schema; VALUE is JSON or text, @PATH a "
    "file (repeat KEY for a list of files)",
)
@click.option("--name", default="", help="the point's name")
@click.option(
    "--json", "as_json", is_flag=True, help="print the result as one JSON object"
)
@click.option(
    "--no-cache", is_flag=True, help="run every step; reuse nothing from the cache"
)
def run(
    slug: str,
    signal: Path | None,
    patch: str | None,
    example: bool,
    given: tuple[str, ...],
    name: str,
    as_json: bool,
    no_cache: bool,
) -> None:
    """Run one point of SLUG here and now, with no server."""
    chosen = [
        flag
        for flag, value in (
            ("--signal", signal),
            ("--patch", patch),
            ("--example", example),
            ("--input", given),
        )
        if value
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --signal FILE, --patch NAME, --input KEY=VALUE... "
            "or --example"
        )
    pairs = input_pairs(given)
    django_setup(quiet=False)
    from recast.reinterpretation.local import run_locally

    summary = run_locally(
        slug,
        signal=signal,
        patch=patch,
        example=example,
        given=pairs,
        name=name,
        use_cache=not no_cache,
    )
    if as_json:
        print_json(summary)
    else:
        print_table([summary])
        click.echo(f"archive: {summary['archive']}")
    if summary["status"] != "succeeded":
        click.echo(f"error: run {summary['status']}: {summary['error']}", err=True)
        sys.exit(EXIT_FAILED)


@cli.group(cls=Group)
def archive() -> None:
    """Run archives."""


@contextlib.contextmanager
def archive_folder(path: Path) -> Iterator[Path]:
    """The archive at ``path``: a folder, or a downloaded .tar.gz unpacked safely."""
    if path.is_dir():
        yield path
        return
    from recast.archive.unpack import UnsafeArchive, unpack

    with tempfile.TemporaryDirectory() as scratch:
        try:
            folder = unpack(path, Path(scratch))
        except UnsafeArchive as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        yield folder


@archive.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def archive_verify(path: Path) -> None:
    """Recompute every checksum of the archive at PATH (a folder or a .tar.gz)."""
    from recast.archive.builder import archive_verify as verify

    with archive_folder(path) as folder:
        problems = verify(folder)
    for problem in problems:
        click.echo(f"{path}: {problem}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)
    click.echo(f"{path}: intact", err=True)


@cli.command("login")
@click.option("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
@click.option(
    "--token", prompt=True, hide_input=True, help="an API token (create_token)"
)
def login(url: str, token: str) -> None:
    """Remember a server and token (in a file only you can read)."""
    Client(url, token).get("requests/", limit=1)  # fails loudly on a bad token
    click.echo(f"saved to {config_write(url, token)}", err=True)


@cli.command("submit")
@click.argument("slug")
@click.option("--signal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--patch", "patches", multiple=True, help="a patch name (repeat for a scan)"
)
@click.option("--scan", help="a glob over the patch names, or a patchset file")
@click.option(
    "--input",
    "given",
    multiple=True,
    metavar="KEY=VALUE",
    help="an input of one point, as for `recast run` (@PATH for a file)",
)
@click.option("--name", help="the point's name (one point)")
@click.option("--watch", is_flag=True, help="follow progress until the request ends")
@click.option("--json", "as_json", is_flag=True, help="print the request as JSON")
@click.option(
    "--no-cache", is_flag=True, help="run every step; reuse nothing from the cache"
)
@click.option(
    "--credential",
    "credential_names",
    multiple=True,
    metavar="NAME",
    help="hand the steps your stored credential NAME while they run (repeatable)",
)
def submit(
    slug: str,
    signal: Path | None,
    patches: tuple[str, ...],
    scan: str | None,
    given: tuple[str, ...],
    name: str | None,
    watch: bool,
    as_json: bool,
    no_cache: bool,
    credential_names: tuple[str, ...],
) -> None:
    """Submit a reinterpretation request to the server; prints its id."""
    chosen = [
        flag
        for flag, value in (
            ("--signal", signal),
            ("--patch", patches),
            ("--scan", scan),
            ("--input", given),
        )
        if value
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --signal FILE, --patch NAME..., --scan GLOB|FILE "
            "or --input KEY=VALUE..."
        )
    pairs = input_pairs(given)
    for key, value in pairs:
        if isinstance(value, Path) and not value.is_file():
            raise click.UsageError(f"--input {key}=@{value}: no such file")
    client = Client()
    created = remote.submit_request(
        client,
        slug,
        signal,
        patches,
        scan,
        name,
        pairs,
        use_cache=not no_cache,
        credentials=list(credential_names),
    )
    if not watch:
        print_json(created) if as_json else click.echo(created["id"])
        return
    remote.echo_err(f"request {created['id']}: {len(created['runs'])} point(s)")
    stages = len(client.get(f"analyses/{slug}/")["workflow"]["stages"])
    final = remote.watch(client, created["id"], stages)
    print_json(final) if as_json else print_table(
        remote.results_rows(client, created["id"])
    )
    if final["status"] != "succeeded":
        sys.exit(EXIT_FAILED)


@cli.command("status")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True)
def status(request_id: str, as_json: bool) -> None:
    """A request's state, and each point's."""
    detail = Client().get(f"requests/{request_id}/")
    if as_json:
        print_json(detail)
    else:
        click.echo("\n".join(remote.status_lines(detail)))


@cli.command("results")
@click.argument("request_id")
@click.option(
    "--format", "form", type=click.Choice(["table", "json", "csv"]), default="table"
)
def results(request_id: str, form: str) -> None:
    """The numbers of every point of a request."""
    remote.show_results(Client(), request_id, form)


@cli.command("download")
@click.argument("request_id")
@click.option(
    "--output", type=click.Path(file_okay=False, path_type=Path), default=Path(".")
)
def download(request_id: str, output: Path) -> None:
    """Every run's archive (.tar.gz) and the results as CSV."""
    for path in remote.download(Client(), request_id, output):
        click.echo(str(path))


@cli.command("cancel")
@click.argument("request_id")
def cancel(request_id: str) -> None:
    """Cancel a request's unfinished points."""
    answer = Client().post(f"requests/{request_id}/cancel/")
    click.echo(f"cancelled {answer['cancelled']} point(s)", err=True)


@cli.command("validate")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
def validate(slug: str, as_json: bool) -> None:
    """Re-run SLUG's example here and compare it with its reference result."""
    django_setup()
    from recast.catalogue.selectors import analysis_get
    from recast.reinterpretation.execution import run_execute
    from recast.reinterpretation.validation import validation_start

    check = validation_start(analysis_get(slug), enqueue_runs=False)
    run_execute(str(check.request.runs.get().id))
    check.refresh_from_db()
    if as_json:
        keys = ("verdict", "message", "deviations", "platform_version")
        print_json({key: getattr(check, key) for key in keys})
    for row in check.deviations:
        mark = "ok  " if row["ok"] else "FAIL"
        click.echo(
            f"{mark} {row['quantity']:24} relative deviation {row['relative']:.3g}",
            err=True,
        )
    click.echo(f"{slug}: {check.verdict}: {check.message}", err=True)
    if check.verdict != "pass":
        sys.exit(EXIT_FAILED)


@cli.command("lint")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def lint_command(path: Path, as_json: bool) -> None:
    """Check a preserved-analysis folder or a yadage spec; exit 1 on any error."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")
    import django

    django.setup()
    from recast.catalogue.lint import lint

    findings = lint(path)
    if as_json:
        print_json([finding.as_dict() for finding in findings])
    for f in findings:
        click.echo(
            f"{f.file}: {f.path}: {f.severity}: {f.message}"
            + (f" (hint: {f.hint})" if f.hint else ""),
            err=True,
        )
    errors = sum(1 for f in findings if f.severity == "error")
    click.echo(
        f"{path}: {errors} error(s), {len(findings) - errors} other finding(s)",
        err=True,
    )
    if errors:
        sys.exit(EXIT_FAILED)


@cli.command("export")
@click.argument("request_id")
@click.option(
    "--to", "target", type=click.Choice(["cap", "hepdata", "inspire"]), required=True
)
@click.option(
    "--output", type=click.Path(file_okay=False, path_type=Path), required=True
)
def export(request_id: str, target: str, output: Path) -> None:
    """Export a finished request for CAP, HEPData or INSPIRE into OUTPUT
    (from the server when one is configured, else from the local database)."""
    if server_configured():
        written = remote.export(Client(), request_id, target, output)
    else:
        django_setup(quiet=True)
        from recast.reinterpretation.exports import request_export
        from recast.reinterpretation.selectors import request_get

        written = request_export(request_get(request_id), target, output)
    for path in written:
        click.echo(str(path))


@cli.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    type=int,
    help="batches of runs at once, on background threads of each web process "
    "(no broker); default: one per core",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="gunicorn worker processes; default: RECAST_WEB_PROCESSES (the cores)",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="threads per web process; default: RECAST_WEB_THREADS (64 / processes)",
)
def serve(
    host: str, port: int, workers: int, processes: int | None, threads: int | None
) -> None:
    """Start the web server (gunicorn). With no broker configured, requests run
    on background threads in the server itself."""
    django_setup(quiet=True)
    from django.conf import settings

    from recast.cli.serving import serve as start

    start(
        host,
        port,
        workers,
        processes or settings.RECAST_WEB_PROCESSES,
        threads or settings.RECAST_WEB_THREADS,
    )


@archive.command("rerun")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--rtol",
    default=1e-6,
    show_default=True,
    help="largest relative deviation accepted",
)
@click.option("--json", "as_json", is_flag=True)
def archive_rerun(path: Path, rtol: float, as_json: bool) -> None:
    """Re-run the point archived at PATH (a folder or a .tar.gz) from the archive
    alone and compare."""
    django_setup(quiet=True)
    from django.conf import settings

    from recast.archive.rerun import RerunError
    from recast.archive.rerun import archive_rerun as rerun

    try:
        with archive_folder(path) as folder, tempfile.TemporaryDirectory() as scratch:
            compared = rerun(
                folder.resolve(), Path(settings.RECAST_ENVS_DIR), Path(scratch) / "run"
            )
    except RerunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        print_json(
            {
                "status": compared.status,
                "reason": compared.reason,
                "deviations": compared.deviations,
            }
        )
    for name, value in compared.deviations.items():
        click.echo(f"{name:10} max relative deviation {value:.3g}", err=True)
    if not compared.within(rtol):
        click.echo(
            f"error: not reproduced within {rtol:g} ({compared.status}"
            f"{': ' + compared.reason if compared.reason else ''})",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo(f"{path}: reproduced within {rtol:g}", err=True)


cli.add_command(notify.notifications)
cli.add_command(notify.usage)
cli.add_command(credentials)


def main() -> None:
    cli()
