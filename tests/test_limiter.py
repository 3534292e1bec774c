from __future__ import annotations

import time

import anyio
import pytest


def test_rate_limit_refills_smoothly(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.web import limiter
    from service.web.errors import ClientError

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])  # the clock service.web.limiter reads
    bucket = limiter.RateLimit(60)
    for _ in range(60):
        bucket.take("key")
    with pytest.raises(ClientError, match="60 requests a minute"):
        bucket.take("key")
    bucket.take("other-key")  # buckets are per key
    clock[0] += 1.0  # one second refills one request at 60 a minute
    bucket.take("key")
    with pytest.raises(ClientError):
        bucket.take("key")
    limiter.RateLimit(0).take("key")  # 0 = off


def test_byte_budget_makes_a_parse_wait_for_room_then_refuses() -> None:
    from service.web.errors import ServiceUnavailable
    from service.web.limiter import ByteBudget

    budget = ByteBudget(100)
    order: list[str] = []

    async def hold(name: str, size: int, seconds: float) -> None:
        async with budget.holding(size, wait_seconds=5):
            order.append(name)
            await anyio.sleep(seconds)

    async def scenario() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold, "large", 500, 0.2)  # more than the whole budget: takes all of it
            await anyio.sleep(0.05)
            tasks.start_soon(hold, "small", 1, 0)  # waits until the large one is done
        assert order == ["large", "small"]
        assert budget.used == 0
        async with budget.holding(100, wait_seconds=5):
            with pytest.raises(ServiceUnavailable, match="busy"):
                async with budget.holding(1, wait_seconds=0.05):
                    pass

    anyio.run(scenario)
