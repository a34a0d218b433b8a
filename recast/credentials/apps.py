from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "recast.credentials"
    default_auto_field = "django.db.models.BigAutoField"
