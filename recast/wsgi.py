"""WSGI entry point for gunicorn and other servers."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recast.settings")
application = get_wsgi_application()

# With no broker, this process runs the requests itself: pick up what a
# previous server process left queued or running.
from recast.reinterpretation.dispatch import resume  # noqa: E402

resume()

# What is loaded by now (Django, the apps, the views and their serializers,
# numpy and the engine's imports) lives as long as the process: moved out of
# the collector's reach, a full collection no longer walks it, which stalled
# every thread of the process for about 90 ms (10 to 35 ms now), once
# every thousand answers or so, the slowest answers under load.
get_resolver().url_patterns  # noqa: B018 (imports the views before the freeze)
gc.collect()
gc.freeze()
