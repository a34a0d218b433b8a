"""recast: preserve particle-physics analyses and reinterpret them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recast")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

# The Celery app is created with Django so that shared tasks bind to it.
from recast.celery import app as celery_app

__all__ = ["__version__", "celery_app"]
