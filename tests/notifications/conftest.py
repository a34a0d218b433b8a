"""A real SMTP server and a real HTTP receiver on loopback, and helpers that
move a request's runs to their end through the services (no workflow runs)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from django.conf import settings

from recast.catalogue.models import Analysis
from recast.notifications.channels import SIGNATURE_HEADER, signature
from recast.reinterpretation.inputs import check_point
from recast.reinterpretation.models import Request
from recast.reinterpretation.services import (
    request_submit,
    run_fail,
    run_start,
    run_succeed,
)
from tests.servers import free_port

RESULT = {
    "point": "",
    "cls_obs": 0.0676,
    "cls_exp": [0.02, 0.046, 0.15, 0.39, 0.7],
    "mu_up_obs": 1.094,
    "mu_up_exp": [0.7, 0.98, 1.43, 2.14, 3.0],
    "excluded": False,
}


@pytest.fixture(autouse=True)
def deliveries_in_process(request: pytest.FixtureRequest, settings: Any) -> None:
    """Send deliveries in the test's own process, even where CI configures a
    broker; the services test sends them through a real worker instead."""
    if request.node.get_closest_marker("services") is None:
        settings.CELERY_BROKER_URL = ""
        settings.RECAST_INPROCESS_WORKERS = 0


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(
        self, server: SMTPServer, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        self.messages.append((envelope, message_from_bytes(content)))
        return "250 OK"


@pytest.fixture
def mailbox(settings: Any) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.RECAST_PUBLIC_URL = "https://recast.example.org"
    yield box
    controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers ``failures`` requests with 500 before it accepts; checks each
    signature against the secret registered for its path."""

    url: str
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    failures: int = 0


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.RECAST_NOTIFY_BACKOFF = 0
    settings.RECAST_WEBHOOK_ALLOW_PRIVATE = True  # it listens on loopback
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Receiver(f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            secret = state.secrets.get(self.path, "")
            expected = signature(secret, body)
            verified = self.headers.get(SIGNATURE_HEADER, "") == expected
            state.received.append(
                Received(self.path, dict(self.headers), body, verified)
            )
            failing = state.failures > 0
            state.failures -= 1
            self.send_response(500 if failing or not verified else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def submit(demo: Analysis, owner: Any, patches: list[str]) -> Request:
    points = [check_point(demo, {"patch": name}) for name in patches]
    return request_submit(demo, points, owner=owner, enqueue_runs=False)


def succeed(request: Request, point: str) -> None:
    run = request.runs.get(point=point)
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    archive = Path(settings.RECAST_ARCHIVE_DIR) / str(run.id)
    archive.mkdir(parents=True)
    (archive / "result.json").write_text(json.dumps(RESULT))
    run_succeed(str(run.id), attempt, {**RESULT, "point": point}, str(archive), "0")


def fail(request: Request, point: str, reason: str) -> None:
    run = request.runs.get(point=point)
    attempt = run_start(str(run.id), "local")
    assert attempt is not None
    run_fail(str(run.id), attempt, reason, "fit")
