from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "recast.api"

    def ready(self) -> None:
        # Registers the token scheme with drf-spectacular.
        from recast.api import schema  # noqa: F401
