"""A cap on concurrent inferences with a short queue; beyond it, callers are turned away."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.errors import ClientError, ServiceUnavailable

BUSY = "the service is busy; retry in a few seconds"


class InferenceLimiter:
    """``admit`` counts a request from before its body is read, so a full queue answers 503
    without reading anything; ``slot`` then waits (briefly) for one of the inference slots."""

    def __init__(self, slots: int, queue: int, wait_seconds: float) -> None:
        self._slots = anyio.Semaphore(slots)
        self._capacity = slots + queue
        self._wait_seconds = wait_seconds
        self.pending = 0
        self.rejected = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.pending >= self._capacity:
            self.rejected += 1
            raise ServiceUnavailable(BUSY)
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        with anyio.move_on_after(self._wait_seconds) as waited:
            await self._slots.acquire()
        if waited.cancelled_caught:
            self.rejected += 1
            raise ServiceUnavailable(BUSY)
        try:
            yield
        finally:
            self._slots.release()


class RateLimit:
    """A token bucket per API key: ``per_minute`` requests a minute, refilled smoothly; 0 = off."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise ClientError(
                f"rate limit of {self.per_minute} requests a minute reached; retry shortly", 429
            )
        self._buckets[key] = (tokens - 1.0, now)
