"""The portal's pages (the catalogue is the home page)."""

from django.urls import path

from recast.portal import views

app_name = "portal"
urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("analyses/<slug:slug>/", views.analysis_detail, name="analysis"),
    path("analyses/<slug:slug>/graph.svg", views.analysis_graph, name="analysis-graph"),
    path("analyses/<slug:slug>/submit/", views.submit, name="submit"),
    path("requests/", views.request_list, name="requests"),
    path("requests/<str:request_id>/", views.request_detail, name="request"),
    path(
        "requests/<str:request_id>/cancel/",
        views.request_stop,
        name="request-cancel",
    ),
    path(
        "requests/<str:request_id>/contour.svg",
        views.request_contour,
        name="request-contour",
    ),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/graph.svg", views.run_graph, name="run-graph"),
    path("runs/<str:run_id>/brazil.svg", views.run_brazil, name="run-brazil"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<str:prefix>/revoke/", views.token_delete, name="token-revoke"),
    path("credentials/", views.credentials, name="credentials"),
    path(
        "credentials/<str:name>/delete/",
        views.credential_delete,
        name="credential-delete",
    ),
]
