"""Errors a client of the web service can cause, each carrying the HTTP status it maps to (the
detector's AudioError is answered as a 400)."""

from __future__ import annotations


class ClientError(Exception):
    """A request the service refuses; ``message`` is safe to show to the caller."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.close = close  # the client stalled mid-body: the connection cannot be reused
        if status_code is not None:
            self.status_code = status_code


class ServiceUnavailable(ClientError):
    """Not ready, or too busy: the caller should retry (sent with Retry-After)."""

    status_code = 503


# how the web service answers the detector's AudioError (OpenAPI's documented statuses)
AUDIO_ERRORS = {400: "unusable audio: not MP3, WAV, FLAC or OGG, corrupt, too long, too short or silent"}
