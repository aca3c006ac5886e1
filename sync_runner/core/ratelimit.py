"""Pacing requests to a destination's documented rate.

One token bucket per destination, shared by delivery's worker threads and by destinations that make extra calls
of their own (Iterable's per-user deletes), so both count against the same budget.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket shared by the worker threads."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            time.sleep(start - now)
