from django.apps import AppConfig


class ReinterpretationConfig(AppConfig):
    name = "recast.reinterpretation"
    default_auto_field = "django.db.models.BigAutoField"
