from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "recast.storage"
    default_auto_field = "django.db.models.BigAutoField"
