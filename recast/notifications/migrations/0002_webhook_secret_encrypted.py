"""Webhook signing secrets move from plain text to Fernet ciphertext under
RECAST_CREDENTIALS_KEYS (recast.credentials.crypto); existing rows are
encrypted on the way, and decrypted again if the migration is reversed."""

from typing import Any

from django.db import migrations, models


def encrypt_secrets(apps: Any, schema_editor: Any) -> None:
    from recast.credentials import crypto

    Webhook = apps.get_model("notifications", "Webhook")
    for webhook in Webhook.objects.all():
        webhook.secret_ciphertext = crypto.encrypt(webhook.secret)
        webhook.save(update_fields=["secret_ciphertext"])


def decrypt_secrets(apps: Any, schema_editor: Any) -> None:
    from recast.credentials import crypto

    Webhook = apps.get_model("notifications", "Webhook")
    for webhook in Webhook.objects.all():
        webhook.secret = crypto.decrypt(webhook.secret_ciphertext)
        webhook.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhook",
            name="secret_ciphertext",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
        # A default, so that reversing can add the column back before the
        # secrets are decrypted into it.
        migrations.AlterField(
            model_name="webhook",
            name="secret",
            field=models.CharField(max_length=100, default=""),
        ),
        migrations.RemoveField(model_name="webhook", name="secret"),
    ]
