"""``recast``: the platform's command line.

Local commands (``run``, ``catalogue``, ``archive``) work on the embedded
defaults with no server. Exit codes: 0 success, 1 a run failed, 2 bad usage or
input rejected. Machine output goes to stdout, messages to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

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
    """List the catalogued analyses."""
    django_setup()
    from recast.catalogue.selectors import analysis_list

    rows = [
        {
            "slug": a.slug,
            "title": a.title,
            "collaboration": a.collaboration,
            "kind": a.kind,
        }
        for a in analysis_list()
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['slug']:30} {row['title']}")


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
    "--json", "as_json", is_flag=True, help="print the result as one JSON object"
)
def run(
    slug: str, signal: Path | None, patch: str | None, example: bool, as_json: bool
) -> None:
    """Run one point of SLUG here and now, with no server."""
    chosen = [
        name
        for name, given in (
            ("--signal", signal),
            ("--patch", patch),
            ("--example", example),
        )
        if given
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --signal FILE, --patch NAME or --example"
        )
    django_setup(quiet=False)
    from recast.reinterpretation.local import run_locally

    summary = run_locally(slug, signal=signal, patch=patch, example=example)
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


@archive.command("verify")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def archive_verify(path: Path) -> None:
    """Recompute every checksum of the archive at PATH."""
    from recast.archive.builder import archive_verify as verify

    problems = verify(path)
    for problem in problems:
        click.echo(f"{path}: {problem}", err=True)
    if problems:
        sys.exit(EXIT_FAILED)
    click.echo(f"{path}: intact", err=True)


def main() -> None:
    cli()
