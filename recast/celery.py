"""The Celery application; the broker comes from CELERY_BROKER_URL."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")

app = Celery("recast")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    ["recast.reinterpretation", "recast.notifications", "recast.quotas"]
)
