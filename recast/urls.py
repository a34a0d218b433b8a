"""URL routes: the REST API under /api/v1."""

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include("recast.api.urls")),
]
