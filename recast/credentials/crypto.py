"""Encryption at rest of stored secrets: Fernet (AES-128-CBC with an HMAC)
under RECAST_CREDENTIALS_KEYS, newest key first; the older keys still
decrypt, so keys rotate without downtime (see ``rotate``)."""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Undecryptable(Exception):
    """A stored value no configured key opens (its key was dropped too early)."""


@functools.cache
def keyring(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "RECAST_CREDENTIALS_KEYS: each key must be 32 url-safe base64-encoded "
            "bytes (make one with `manage.py credentials_key`)"
        ) from None


def current() -> MultiFernet:
    return keyring(tuple(settings.RECAST_CREDENTIALS_KEYS))


def encrypt(value: str) -> str:
    return current().encrypt(value.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise Undecryptable(
            "a stored secret cannot be decrypted with RECAST_CREDENTIALS_KEYS"
        ) from None


def rotate(ciphertext: str) -> str:
    """``ciphertext`` encrypted again under the newest key."""
    try:
        return current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise Undecryptable(
            "a stored secret cannot be decrypted with RECAST_CREDENTIALS_KEYS"
        ) from None
