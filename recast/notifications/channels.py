"""The two ways out: e-mail through Django's mail framework (SMTP, or the
console in the embedded default) and signed HTTP POSTs to webhooks.

Each returns an Attempt; neither raises for a receiver's failure.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Recast-Signature"
WEBHOOK_TIMEOUT = 10
MAX_ERROR = 500


@dataclass
class Attempt:
    ok: bool
    status_code: int | None = None
    error: str = ""


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header: HMAC-SHA256 of the exact body."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global or ip.is_multicast


def private_host(url: str, resolve: bool) -> str:
    """Why ``url`` may not receive webhooks: a host on this machine or its
    private network (another service's port), unless
    RECAST_WEBHOOK_ALLOW_PRIVATE. With ``resolve``, names are looked up too;
    a name that does not resolve is left to fail when posted to."""
    if settings.RECAST_WEBHOOK_ALLOW_PRIVATE:
        return ""
    host = urlsplit(url).hostname or ""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            addresses = ["127.0.0.1"]
        elif not resolve:
            return ""
        else:
            try:
                found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except (socket.gaierror, UnicodeError):
                return ""
            addresses = [str(info[4][0]) for info in found]
    bad = [a for a in addresses if internal(a)]
    if bad:
        return f"{host} is a private address ({bad[0]}); webhooks go to public hosts"
    return ""


def webhook_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def webhook_post(
    url: str, secret: str, document: dict[str, Any], delivery_id: str
) -> Attempt:
    refused = private_host(url, resolve=True)
    if refused:
        return Attempt(False, None, refused)
    body = webhook_body(document)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "recast-webhook/1",
        SIGNATURE_HEADER: signature(secret, body),
        "X-Recast-Event": str(document["event"]),
        "X-Recast-Delivery": delivery_id,
    }
    try:
        # No redirects: a receiver that moved must be registered again.
        response = requests.post(
            url,
            data=body,
            headers=headers,
            timeout=WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        logger.warning("webhook delivery %s to %s failed: %s", delivery_id, url, exc)
        return Attempt(False, None, f"cannot reach {url}: {exc}"[:MAX_ERROR])
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code)
    error = f"the receiver answered {response.status_code} {response.reason}"
    return Attempt(False, response.status_code, error[:MAX_ERROR])


def email_send(address: str, subject: str, text: str) -> Attempt:
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [address])
    except Exception as exc:  # smtplib and socket errors alike
        logger.warning("e-mail to %s failed: %s", address, exc)
        return Attempt(False, None, f"the mail server refused: {exc}"[:MAX_ERROR])
    return Attempt(True)
