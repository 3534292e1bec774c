from __future__ import annotations

import time

import pytest


def test_rate_limit_refills_smoothly(monkeypatch: pytest.MonkeyPatch) -> None:
    from service import limiter
    from service.errors import ClientError

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])  # the clock service.limiter reads
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
