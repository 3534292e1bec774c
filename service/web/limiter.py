"""A cap on concurrent inferences with a short queue; beyond it, callers are turned away."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.web.errors import ClientError, ServiceUnavailable

BUSY = "the service is busy; retry in a few seconds"
LIMIT_ERRORS = {
    429: "rate limit for this key reached (see Retry-After)",
    503: "overloaded: the queue is full or the wait would pass the deadline (see Retry-After)",
}


class InferenceLimiter:
    """``admit`` counts a request whose body has arrived towards the queue (``full`` lets a request
    be turned away before its body is read); ``slot`` then waits (briefly) for an inference slot.
    Uploads still arriving hold no place: a client that stalls cannot lock the others out."""

    def __init__(self, slots: int, queue: int, wait_seconds: float) -> None:
        self._slots = anyio.Semaphore(slots)
        self._capacity = slots + queue
        self._wait_seconds = wait_seconds
        self.pending = 0
        self.rejected = 0

    def refuse_if_full(self) -> None:
        if self.pending >= self._capacity:
            self.rejected += 1
            raise ServiceUnavailable(BUSY)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        self.refuse_if_full()
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    def wait_seconds(self, deadline: float | None = None) -> float:
        """The queue timeout, and at most half of what is left before ``deadline``
        (time.monotonic()), so that a request that waited still has time to be analysed."""
        if deadline is None:
            return self._wait_seconds
        return min(self._wait_seconds, max(0.0, deadline - time.monotonic()) / 2)

    @asynccontextmanager
    async def slot(self, deadline: float | None = None) -> AsyncIterator[None]:
        """Waits for an inference slot at most ``wait_seconds(deadline)``."""
        with anyio.move_on_after(self.wait_seconds(deadline)) as waited:
            await self._slots.acquire()
        if waited.cancelled_caught:
            self.rejected += 1
            raise ServiceUnavailable(BUSY)
        try:
            yield
        finally:
            self._slots.release()


class ByteBudget:
    """Bytes of complete request bodies being worked on in memory at once, over all requests.
    Only the server holds it, for as long as its own work takes (never while a client is still
    sending): a request waits for room, and gets 503 only if none is made within its wait."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._released = anyio.Event()

    @asynccontextmanager
    async def holding(self, size: int, wait_seconds: float) -> AsyncIterator[None]:
        size = min(size, self.capacity)  # a body as large as the whole budget waits for all of it
        with anyio.move_on_after(wait_seconds):
            while self.used + size > self.capacity:
                await self._released.wait()
        if self.used + size > self.capacity:
            raise ServiceUnavailable(BUSY)
        self.used += size
        try:
            yield
        finally:
            self.used -= size
            self._released.set()
            self._released = anyio.Event()


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
