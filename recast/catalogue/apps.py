from django.apps import AppConfig


class CatalogueConfig(AppConfig):
    name = "recast.catalogue"
    default_auto_field = "django.db.models.BigAutoField"
