"""A cap on concurrent inferences with a short queue; beyond it, callers are turned away."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio

from service.errors import ClientError, ServiceUnavailable

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

    @asynccontextmanager
    async def slot(self, deadline: float | None = None) -> AsyncIterator[None]:
        """Waits at most the queue timeout, and at most half of what is left before ``deadline``
        (time.monotonic()), so that a request that waited still has time to be analysed."""
        wait = self._wait_seconds
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()) / 2)
        with anyio.move_on_after(wait) as waited:
            await self._slots.acquire()
        if waited.cancelled_caught:
            self.rejected += 1
            raise ServiceUnavailable(BUSY)
        try:
            yield
        finally:
            self._slots.release()


class ByteBudget:
    """Bytes of request bodies held in memory at once, over all requests; beyond it, 503."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    @contextmanager
    def holding(self) -> Iterator[Callable[[int], None]]:
        """A function that takes more bytes for this request; all of them go back on exit."""
        held = 0

        def take(size: int) -> None:
            nonlocal held
            if self.used + size > self.capacity:
                raise ServiceUnavailable(BUSY)
            self.used += size
            held += size

        try:
            yield take
        finally:
            self.used -= held


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
