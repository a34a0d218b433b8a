from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from recast.api import credentials, notifications, quotas, views

urlpatterns = [
    path("analyses/", views.AnalysisList.as_view(), name="analysis-list"),
    path("analyses.json", views.AnalysesForHepdata.as_view(), name="analyses-hepdata"),
    path(
        "analyses/<slug:slug>/", views.AnalysisDetail.as_view(), name="analysis-detail"
    ),
    path(
        "analyses/<slug:slug>/validate/",
        views.AnalysisValidate.as_view(),
        name="analysis-validate",
    ),
    path("uploads/", views.UploadCreate.as_view(), name="upload-create"),
    path("requests/", views.RequestListCreate.as_view(), name="request-list"),
    path(
        "requests/<str:request_id>/",
        views.RequestDetail.as_view(),
        name="request-detail",
    ),
    path(
        "requests/<str:request_id>/cancel/",
        views.RequestCancel.as_view(),
        name="request-cancel",
    ),
    path(
        "requests/<str:request_id>/archive/",
        views.RequestArchive.as_view(),
        name="request-archive",
    ),
    path(
        "requests/<str:request_id>/export/",
        views.RequestExport.as_view(),
        name="request-export",
    ),
    path(
        "requests/<str:request_id>/results/",
        views.RequestResults.as_view(),
        name="request-results",
    ),
    path("runs/<str:run_id>/", views.RunDetail.as_view(), name="run-detail"),
    path("runs/<str:run_id>/archive/", views.RunArchive.as_view(), name="run-archive"),
    path("runs/<str:run_id>/logs/<str:step>/", views.RunLog.as_view(), name="run-log"),
    path("tokens/", views.TokenListCreate.as_view(), name="token-list"),
    path(
        "credentials/",
        credentials.CredentialListCreate.as_view(),
        name="credential-list",
    ),
    path(
        "credentials/<str:name>/",
        credentials.CredentialDelete.as_view(),
        name="credential-delete",
    ),
    path("tokens/<str:prefix>/", views.TokenRevoke.as_view(), name="token-revoke"),
    path(
        "analyses/<slug:slug>/follow/",
        notifications.AnalysisFollow.as_view(),
        name="analysis-follow",
    ),
    path(
        "notifications/preferences/",
        notifications.PreferenceDetail.as_view(),
        name="notification-preferences",
    ),
    path(
        "notifications/webhooks/",
        notifications.WebhookListCreate.as_view(),
        name="webhook-list",
    ),
    path(
        "notifications/webhooks/<str:webhook_id>/",
        notifications.WebhookDelete.as_view(),
        name="webhook-delete",
    ),
    path(
        "notifications/deliveries/",
        notifications.DeliveryList.as_view(),
        name="delivery-list",
    ),
    path(
        "notifications/deliveries/<str:delivery_id>/replay/",
        notifications.DeliveryReplay.as_view(),
        name="delivery-replay",
    ),
    path(
        "notifications/follows/",
        notifications.FollowList.as_view(),
        name="follow-list",
    ),
    path("usage/", quotas.Usage.as_view(), name="usage"),
    path("quotas/users/<str:name>/", quotas.QuotaDetail.as_view(), name="quota-user"),
    path(
        "quotas/groups/<str:name>/",
        quotas.GroupQuotaDetail.as_view(),
        name="quota-group",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    re_path(r"", views.NoSuchEndpoint.as_view(), name="no-such-endpoint"),
]
