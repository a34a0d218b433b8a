"""Typed readers of environment variables that fail loudly on a bad value."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def raw(name: str) -> str | None:
    """The value of ``name``, or the contents of the file named by ``<name>_FILE``."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE: cannot read {path}: {exc}"
            ) from exc
    return os.environ.get(name)


def string(name: str, default: str) -> str:
    value = raw(name)
    return default if value is None else value


def required(name: str) -> str:
    value = raw(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set")
    return value


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")


def integer(name: str, default: int, minimum: int = 0) -> int:
    value = raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: expected an integer, got {value!r}"
        ) from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    return number


def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = string(name, default)
    if value not in allowed:
        raise ImproperlyConfigured(
            f"{name}: expected one of {', '.join(allowed)}, got {value!r}"
        )
    return value


def strings(name: str, default: str) -> list[str]:
    return [part.strip() for part in string(name, default).split(",") if part.strip()]


def path(name: str, default: Path) -> Path:
    value = raw(name)
    return Path(value).resolve() if value else default
