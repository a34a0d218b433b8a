"""The encryption keys: rotation without losing a secret, and no start in
production without them (nothing derived from the secret key)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command

from recast.credentials import crypto, selectors, services
from recast.credentials.models import Credential, CredentialUse
from recast.notifications.services import webhook_create
from tests.conftest import REPO

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice")


def test_rotation_re_encrypts_every_secret_so_the_old_key_can_go(
    alice: User, settings: Any
) -> None:
    settings.RECAST_CREDENTIALS_KEYS = [OLD]
    services.credential_create(alice, "eos", "token-value-1")
    webhook, signing = webhook_create(alice, "https://hooks.example.org/r")
    settings.RECAST_CREDENTIALS_KEYS = [NEW, OLD]

    said = io.StringIO()
    call_command("credentials_rotate", stdout=said)
    settings.RECAST_CREDENTIALS_KEYS = [NEW]

    assert said.getvalue() == "re-encrypted 2 secret(s) under the newest key\n"
    ciphertext = Credential.objects.get().ciphertext
    assert Fernet(NEW.encode()).decrypt(ciphertext.encode()) == b"token-value-1"
    webhook.refresh_from_db()
    assert crypto.decrypt(webhook.secret_ciphertext) == signing
    assert signing not in webhook.secret_ciphertext


def test_a_secret_under_a_dropped_key_fails_the_run_with_a_clear_reason(
    alice: User, settings: Any, demo: Any
) -> None:
    from recast.reinterpretation.inputs import check_point
    from recast.reinterpretation.services import request_submit

    settings.RECAST_CREDENTIALS_KEYS = [OLD]
    services.credential_create(alice, "eos", "token-value-1")
    point = check_point(demo, {"patch": "stop_450_100"})
    request = request_submit(demo, [point], alice, enqueue_runs=False)
    CredentialUse.objects.create(request=request, name="eos")
    settings.RECAST_CREDENTIALS_KEYS = [NEW]

    with pytest.raises(selectors.CredentialUnavailable) as raised:
        selectors.request_credentials(request.id)

    assert str(raised.value) == (
        "a stored secret cannot be decrypted with RECAST_CREDENTIALS_KEYS"
    )


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_credentials_keys(tmp_path: Any) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RECAST_CREDENTIALS")
    }
    env.update(
        RECAST_PRODUCTION="true",
        RECAST_SECRET_KEY="k" * 50,
        RECAST_VAR_DIR=str(tmp_path),
    )

    done = manage_check(env)

    assert done.returncode == 1
    assert "RECAST_CREDENTIALS_KEYS must be set" in done.stderr
    assert not (tmp_path / "credentials_key").exists()


def test_a_malformed_key_is_refused_naming_the_setting(settings: Any) -> None:
    settings.RECAST_CREDENTIALS_KEYS = ["not-a-fernet-key"]

    with pytest.raises(Exception, match="RECAST_CREDENTIALS_KEYS: each key must be"):
        crypto.encrypt("token-value-1")


def test_outside_production_a_key_is_made_once_and_kept_private(
    tmp_path: Any,
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RECAST_CREDENTIALS")
    }
    env.update(RECAST_VAR_DIR=str(tmp_path))

    first, second = manage_check(env), manage_check(env)

    keyfile = tmp_path / "credentials_key"
    assert (first.returncode, second.returncode) == (0, 0), first.stderr
    assert keyfile.stat().st_mode & 0o777 == 0o600
    Fernet(keyfile.read_text().strip().encode())  # a valid key
