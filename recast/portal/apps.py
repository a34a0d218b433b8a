from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "recast.portal"
    label = "portal"
