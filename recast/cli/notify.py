"""`recast notifications ...` and `recast usage`: server commands, over HTTP."""

from __future__ import annotations

from typing import Any

import click

from recast.cli.client import Client
from recast.cli.output import print_json


@click.group("notifications")
def notifications() -> None:
    """What the server tells you when your requests end, and where."""


@notifications.command("show")
@click.option("--json", "as_json", is_flag=True)
def show(as_json: bool) -> None:
    """Your notification preferences."""
    found = Client().get("notifications/preferences/")
    if as_json:
        print_json(found)
        return
    for name, value in found.items():
        click.echo(f"{name:20} {value if value != '' else '(account address)'}")


@notifications.command("set")
@click.option("--email/--no-email", default=None, help="send e-mail")
@click.option("--email-address", help="another address than the account's")
@click.option("--request-finished/--no-request-finished", default=None)
@click.option(
    "--scan-halfway/--no-scan-halfway",
    default=None,
    help="when a scan passes 50 %",
)
@click.option(
    "--validation-changed/--no-validation-changed",
    default=None,
    help="when an analysis you follow changes verdict",
)
def set_preferences(**given: Any) -> None:
    """Change some preferences; the others stay as they are."""
    body = {name: value for name, value in given.items() if value is not None}
    if not body:
        raise click.UsageError("give at least one preference to change")
    Client().call("PATCH", "notifications/preferences/", json=body)
    click.echo("preferences saved", err=True)


@notifications.command("webhooks")
@click.option("--json", "as_json", is_flag=True)
def webhooks(as_json: bool) -> None:
    """Your webhooks."""
    found = Client().get("notifications/webhooks/")
    if as_json:
        print_json(found)
        return
    for hook in found:
        click.echo(f"{hook['id']}  {hook['url']}")


@notifications.command("add-webhook")
@click.argument("url")
def add_webhook(url: str) -> None:
    """Register URL; prints its id and its signing secret, shown only now."""
    created = Client().post("notifications/webhooks/", {"url": url})
    click.echo(f"id:     {created['id']}")
    click.echo(f"secret: {created['secret']}")
    click.echo("keep the secret: it is not shown again", err=True)


@notifications.command("remove-webhook")
@click.argument("webhook_id")
def remove_webhook(webhook_id: str) -> None:
    Client().call("DELETE", f"notifications/webhooks/{webhook_id}/")
    click.echo(f"removed webhook {webhook_id}", err=True)


def delivery_line(row: dict[str, Any]) -> str:
    code = f" {row['status_code']}" if row["status_code"] else ""
    error = f": {row['last_error']}" if row["last_error"] else ""
    return (
        f"{row['id']}  {row['created_at'][:19]}  {row['event']:18} "
        f"{row['channel']:7} {row['state']:9} x{row['attempts']}{code}  "
        f"{row['target']}{error}"
    )


@notifications.command("deliveries")
@click.option(
    "--state", type=click.Choice(["pending", "delivered", "failed"]), default=None
)
@click.option("--json", "as_json", is_flag=True)
def deliveries(state: str | None, as_json: bool) -> None:
    """Every delivery of your notifications, newest first."""
    params = {"state": state} if state else {}
    found = Client().get("notifications/deliveries/", **params)["results"]
    if as_json:
        print_json(found)
        return
    for row in found:
        click.echo(delivery_line(row))


@notifications.command("replay")
@click.argument("delivery_id")
def replay(delivery_id: str) -> None:
    """Send a delivery again; prints the new delivery."""
    sent = Client().post(f"notifications/deliveries/{delivery_id}/replay/")
    click.echo(delivery_line(sent))


@notifications.command("follow")
@click.argument("slug")
def follow(slug: str) -> None:
    """Hear when the analysis' reproducibility check changes verdict."""
    Client().post(f"analyses/{slug}/follow/")
    click.echo(f"following {slug}", err=True)


@notifications.command("unfollow")
@click.argument("slug")
def unfollow(slug: str) -> None:
    Client().call("DELETE", f"analyses/{slug}/follow/")
    click.echo(f"no longer following {slug}", err=True)


def limit_text(used: float, limit: int | None, unit: str = "") -> str:
    return f"{used:g}{unit} of {limit}{unit}" if limit else f"{used:g}{unit} (no limit)"


@click.command("usage")
@click.option("--user", help="staff: someone else's usage")
@click.option("--json", "as_json", is_flag=True)
def usage(user: str | None, as_json: bool) -> None:
    """Your points running and queued, and CPU time this month, against your
    limits."""
    params = {"user": user} if user else {}
    found = Client().get("usage/", **params)
    if as_json:
        print_json(found)
        return
    limits = found["limits"]
    click.echo(f"user:    {found['user']}")
    click.echo(f"running: {limit_text(found['running'], limits['max_running'])}")
    click.echo(f"queued:  {limit_text(found['queued'], limits['max_queued'])}")
    cpu = limit_text(found["cpu_seconds"], limits["cpu_seconds_month"], " s")
    click.echo(f"CPU:     {cpu} in {found['month']}")
