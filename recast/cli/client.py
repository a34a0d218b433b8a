"""The HTTP side of the CLI: which server, which token, and one error path.

The server and token come from RECAST_URL and RECAST_TOKEN, or from the file
that ``recast login`` writes (``$XDG_CONFIG_HOME/recast/config.json``, mode 0600).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import requests

TIMEOUT = 60


class ClientError(Exception):
    """The server refused (``status`` 4xx) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "recast" / "config.json"


def config_write(url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private before the token is written, never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url.rstrip("/"), "token": token}, handle)
    path.chmod(0o600)
    return path


def configured() -> dict[str, str]:
    found: dict[str, str] = {}
    path = config_path()
    if path.exists():
        found.update(json.loads(path.read_text()))
    if os.environ.get("RECAST_URL"):
        found["url"] = os.environ["RECAST_URL"]
    if os.environ.get("RECAST_TOKEN"):
        found["token"] = os.environ["RECAST_TOKEN"]
    return found


def server_configured() -> bool:
    return bool(configured().get("url"))


class Client:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        settings = configured()
        self.url = (url or settings.get("url") or "").rstrip("/")
        if not self.url:
            raise ClientError("no server: set RECAST_URL or run `recast login`")
        self.session = requests.Session()
        token = token or settings.get("token")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(
                method, f"{self.url}/api/v1/{path}", timeout=TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ClientError(error_message(response), response.status_code)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, json=body or {}).json()

    def post_files(
        self,
        path: str,
        data: dict[str, str],
        files: dict[str, tuple[str, BinaryIO]] | list[tuple[str, tuple[str, bytes]]],
    ) -> Any:
        """A multipart POST; a list of files may repeat a field name."""
        return self.call("POST", path, data=data, files=files).json()

    def download(self, path: str, target: Path) -> Path:
        response = self.call("GET", path, stream=True)
        with target.open("wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
        return target


def error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"the server answered {response.status_code} {response.reason}"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return f"the server answered {response.status_code} {response.reason}"
