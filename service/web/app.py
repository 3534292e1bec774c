"""The Starlette application, assembled declaratively."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute

from service.detector.errors import AudioError
from service.web import api, stream, upload
from service.web.errors import ClientError
from service.web.middleware import (
    AccessLog,
    InternalErrors,
    RandomWeightsHeader,
    RequestId,
    RequestMetrics,
    SecurityHeaders,
)
from service.web.prometheus import Metrics
from service.web.runtime import Runtime, load_runtime
from service.web.settings import Settings

log = logging.getLogger("voicecheck")


def create_app(settings: Settings, load: Callable[[Settings, Metrics], Runtime] = load_runtime) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        runtime = await run_in_threadpool(load, settings, metrics)
        log.info(
            "model loaded from %s (votes calibrated: %s; wav2vec2 pace %.3f s per audio second)",
            settings.artifacts_dir,
            runtime.rules.calibrated,
            runtime.pace.seconds_per_audio_second,
        )
        if runtime.random_weights:
            log.warning(
                "RANDOM WEIGHTS: this graph was exported with --random-init; verdicts are not meaningful"
            )
        learned_with = runtime.rules.provenance.window_seconds
        if learned_with not in (None, settings.window_seconds):
            log.warning(
                "votes were calibrated with %s s windows but WINDOW_SECONDS is %s: recalibrate or match it",
                learned_with,
                settings.window_seconds,
            )
        yield {"runtime": runtime}
        runtime.ready = False

    middleware = [
        Middleware(RequestId),
        Middleware(AccessLog),
        Middleware(RequestMetrics, metrics=metrics),
        Middleware(SecurityHeaders),
        Middleware(RandomWeightsHeader),
        Middleware(InternalErrors),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["POST", "GET"],
                allow_headers=["content-type", "x-api-key"],
            )
        )
    app = Starlette(
        routes=[
            Route("/", api.index, methods=["GET"]),
            Route("/docs", api.docs, methods=["GET"]),
            Route("/api/voice-detection", api.detect_voice, methods=["POST"]),
            Route("/api/voice-detection/file", upload.detect_upload, methods=["POST"]),
            WebSocketRoute("/api/voice-detection/stream", stream.stream_voice),
            Route("/health", api.health, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            Route("/openapi.json", api.openapi, methods=["GET"]),
        ],
        middleware=middleware,
        exception_handlers={
            ClientError: api.client_error,
            AudioError: api.client_error,
            HTTPException: api.http_error,
        },
        lifespan=lifespan,
    )
    # the redirect would echo the Host header back to the client: unknown paths are a plain 404
    app.router.redirect_slashes = False
    return app
