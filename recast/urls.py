"""URL routes. The REST API arrives under /api/v1 with its own issue."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
