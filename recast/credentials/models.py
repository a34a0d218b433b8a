"""Credentials a user keeps for private inputs, and the requests that use them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from recast.reinterpretation.models import Request


class Credential(models.Model):
    """A named secret (a token, a key) of one user, stored encrypted: only
    ``ciphertext`` (a Fernet token, see recast.credentials.crypto) is kept."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=200, blank=True)
    ciphertext = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_credential")
        ]

    def __str__(self) -> str:
        return f"credential {self.name} of {self.owner}"


class CredentialUse(models.Model):
    """A request's steps are handed its owner's credential of this name while
    they run. By name, not by row: a credential replaced (deleted and added
    again) before the runs start is the one they get."""

    request = models.ForeignKey(
        Request, on_delete=models.CASCADE, related_name="credential_uses"
    )
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["request", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "name"], name="unique_credential_use"
            )
        ]

    def __str__(self) -> str:
        return f"request {self.request_id} uses credential {self.name}"
