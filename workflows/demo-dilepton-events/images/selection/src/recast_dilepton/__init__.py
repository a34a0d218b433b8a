"""Preserved steps of the demo dilepton analysis (recast's event-level demo).

Each step reads and writes plain files, so it runs the same way in a local
virtual environment, a Docker container or a Kubernetes Job. A step that meets
bad input exits with status 2 and one line on stderr saying what is wrong.
"""

__version__ = "1.0.0"


class StepError(Exception):
    """An input problem the requester can fix; reported without a traceback."""
