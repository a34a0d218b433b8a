"""A pool of background threads made on first use, for the work the server
(``recast serve``) does in its own process when no broker is configured."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class LazyPool:
    """One ThreadPoolExecutor per process, made on first use; ``size`` is read
    then, so that a setting changed before that still counts."""

    def __init__(self, size: Callable[[], int], prefix: str) -> None:
        self.size, self.prefix = size, prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.size(), thread_name_prefix=self.prefix
                )
            return self._pool
