"""`recast credentials ...`: your stored credentials on the server, over HTTP.

A value is read from a file, from stdin (``-``) or from a hidden prompt,
never from the command line, where the shell's history and ``ps`` would
show it.
"""

from __future__ import annotations

import sys

import click

from recast.cli.client import Client
from recast.cli.output import print_json


@click.group("credentials")
def credentials() -> None:
    """Credentials for private inputs: handed to your steps while they run."""


def value_from(source: str | None) -> str:
    if source == "-":
        return sys.stdin.read().strip()
    if source is not None:
        try:
            with open(source) as handle:
                return handle.read().strip()
        except OSError as exc:
            message = f"--value-file: cannot read {source}: {exc.strerror}"
            raise click.UsageError(message) from None
    return str(click.prompt("value", hide_input=True, confirmation_prompt=True))


@credentials.command("add")
@click.argument("name")
@click.option(
    "--value-file",
    metavar="PATH",
    help="read the value from PATH ('-': stdin); without it, a hidden prompt",
)
@click.option("--description", default="", help="what it opens, for you")
def add(name: str, value_file: str | None, description: str) -> None:
    """Store credential NAME (encrypted on the server; never shown again)."""
    body = {"name": name, "value": value_from(value_file), "description": description}
    Client().post("credentials/", body)
    click.echo(f"credential {name} stored", err=True)


@credentials.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """Your credentials' names (the server never sends a value back)."""
    found = Client().get("credentials/")
    if as_json:
        print_json(found)
        return
    for credential in found:
        line = f"{credential['name']:24} {credential['created_at']}"
        click.echo(f"{line}  {credential['description']}".rstrip())


@credentials.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Delete credential NAME (requests that name it and have not run fail)."""
    Client().call("DELETE", f"credentials/{name}/")
    click.echo(f"credential {name} deleted", err=True)
