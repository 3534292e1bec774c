"""A cap on concurrent inferences with a short queue; beyond it, callers are turned away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.errors import ServiceUnavailable

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
