"""What the detector refuses: audio it cannot decode or analyse."""

from __future__ import annotations


class AudioError(Exception):
    """Audio that cannot be decoded or analysed; ``message`` says why and is safe to show to
    whoever sent the audio (the web service answers it as a 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
