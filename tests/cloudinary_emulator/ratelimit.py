"""The Admin API's hourly allowance, announced in X-FeatureRateLimit-* headers and enforced with 420."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

HOUR = 3600


@dataclass(frozen=True)
class RateLimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: datetime

    def headers(self) -> dict[str, str]:
        return {
            "X-FeatureRateLimit-Limit": str(self.limit),
            "X-FeatureRateLimit-Remaining": str(self.remaining),
            "X-FeatureRateLimit-Reset": format_datetime(self.reset_at, usegmt=True),
        }

    def exceeded_message(self) -> str:
        # Cloudinary's own wording (seen in the wild as the message of a 420).
        return (
            f"Rate Limit Exceeded. Limit of {self.limit} api operations reached. "
            f"Try again on {self.reset_at:%Y-%m-%d %H:%M:%S} UTC"
        )


class HourlyRateLimiter:
    """Counts calls per clock hour, as Cloudinary's windows reset on the hour."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.limit = limit
        self._window_start = -1
        self._used = 0

    def take(self) -> RateLimitDecision:
        with self._lock:
            now = int(self._clock())
            window_start = now - now % HOUR
            if window_start != self._window_start:
                self._window_start, self._used = window_start, 0
            reset_at = datetime.fromtimestamp(window_start + HOUR, UTC)
            if self._used >= self.limit:
                return RateLimitDecision(False, self.limit, 0, reset_at)
            self._used += 1
            return RateLimitDecision(True, self.limit, self.limit - self._used, reset_at)

    def reset(self) -> None:
        with self._lock:
            self._window_start, self._used = -1, 0
