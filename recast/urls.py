"""URL routes: the REST API under /api/v1, session sign-in, and the portal."""

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include("recast.api.urls")),
    # Session sign-in and sign-out, for the portal and the browsable API docs.
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("recast.portal.urls")),
]
