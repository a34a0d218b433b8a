"""WSGI entry point for gunicorn and other servers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")
application = get_wsgi_application()

# With no broker, this process runs the requests itself: pick up what a
# previous server process left queued or running.
from recast.reinterpretation.dispatch import resume  # noqa: E402

resume()
