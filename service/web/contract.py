"""The hackathon contract: request validation and response shapes."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from service.detector.windows import Detection
from service.web.errors import ClientError

AUDIO_FORMATS = ("mp3", "wav", "flac", "ogg")
REQUIRED_FIELDS = ("language", "audioFormat", "audioBase64")
MAX_JSON_CONTAINERS = 16
MAX_JSON_MEMBERS = 256
WHITESPACE = re.compile(rb"[ \t\r\n]")
REQUEST_ERRORS = {
    400: "empty body, missing or invalid field, unknown language or audioFormat, invalid base64"
}
KEY_HELP = (
    "send it in the x-api-key header: the service's key is its API_KEY, or the first line of its "
    "API_KEY_FILE; scripts/serve prints it and keeps it in ~/.config/voicecheck/api-key"
)


@dataclass(frozen=True)
class DetectionRequest:
    language: str
    audio_format: str
    audio: bytes | BinaryIO  # the clip's bytes, or a file open at its start


def parse_request(body: bytes | bytearray, languages: tuple[str, ...]) -> DetectionRequest:
    """The request in ``body``. A body can be MAX_BODY_BYTES: each copy is let go of as soon as the
    next exists, so at most two are held at once (the text, then the base64 string)."""
    if not body or body.isspace():
        raise ClientError("body is empty: send a JSON object with " + ", ".join(REQUIRED_FIELDS))
    check_json_size(body)
    text = _json_text(body)
    del body
    payload = _load_object(text)
    del text
    return DetectionRequest(
        language=canonical_language(payload["language"], languages),
        audio_format=audio_format(payload["audioFormat"]),
        audio=_decode_base64(payload.pop("audioBase64")),
    )


def _json_text(body: bytes | bytearray) -> str:
    """The body as text, decoded as ``json.loads`` decodes bytes (UTF-8, -16 or -32)."""
    try:
        return body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        raise ClientError("body is not valid JSON") from None


def _load_object(text: str) -> dict[str, Any]:
    """The request object, with every required field a string."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # also JSONDecodeError, huge ints
        raise ClientError("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ClientError("body must be a JSON object with " + ", ".join(REQUIRED_FIELDS))
    for name in REQUIRED_FIELDS:
        if name not in payload:
            raise ClientError(f"missing field '{name}'")
        if not isinstance(payload[name], str):
            raise ClientError(f"field '{name}' must be a string")
    return payload


def check_json_size(body: bytes | bytearray) -> None:
    """Refuse, before parsing, JSON whose parse would cost far more memory than its size: many
    containers or members (each a Python object of 50-100 bytes from 2-3 bytes of input). Braces,
    commas and colons are counted in strings too: the contract's strings (a language, a format,
    base64 with an optional data: prefix) hold almost none, so no request is refused for them."""
    containers = body.count(b"{") + body.count(b"[")
    members = body.count(b",") + body.count(b":")
    if containers > MAX_JSON_CONTAINERS or members > MAX_JSON_MEMBERS:
        raise ClientError(
            f"body is not the request object: at most {MAX_JSON_CONTAINERS} JSON objects or arrays "
            f"and {MAX_JSON_MEMBERS} members are accepted; send " + ", ".join(REQUIRED_FIELDS)
        )


def check_api_key(given: str | None, expected: str, where: str = "x-api-key header") -> None:
    # surrogatepass: a JSON string may hold a lone surrogate, which is a wrong key, not a bug
    if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        raise ClientError(f"missing or invalid API key ({where})", 401)


def canonical_language(value: str, languages: tuple[str, ...]) -> str:
    for name in languages:
        if value.strip().casefold() == name.casefold():
            return name
    raise ClientError(f"unsupported language {value[:40]!r}; allowed: {', '.join(languages)}")


def audio_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in AUDIO_FORMATS:
        raise ClientError(f"unsupported audioFormat {value[:20]!r}; allowed: {', '.join(AUDIO_FORMATS)}")
    return fmt


def _decode_base64(value: str) -> bytes:
    """``value`` is let go of once it is bytes; whitespace is removed (a copy) only if there is any."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise ClientError("audioBase64 is not valid base64") from None
    del value
    if raw.startswith(b"data:") and b"," in raw[:200]:
        raw = raw.split(b",", 1)[1]
    if WHITESPACE.search(raw):
        raw = raw.translate(None, b" \t\r\n")  # line-wrapped base64 is common; no per-piece copies
    if not raw:
        raise ClientError("audioBase64 is empty")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError("audioBase64 is not valid base64") from None


def success_body(language: str, detection: Detection, weights: str) -> dict[str, Any]:
    """The contract's answer, plus ``weights`` (an addition): the origin of the graph's weights,
    "pretrained" or "random-init" (Runtime.weights, from the manifest)."""
    verdict = detection.verdict
    body: dict[str, Any] = {
        "status": "success",
        "language": language,
        "classification": verdict.classification,
        "confidenceScore": round(verdict.confidence, 4),
        "explanation": verdict.explanation(),
        "votes": [vote.as_dict() for vote in verdict.votes],
        "weights": weights,
    }
    if len(detection.segments) > 1:
        body["segments"] = [
            {
                "start": round(window.start, 2),
                "end": round(window.end, 2),
                "classification": segment.classification,
                "score": round(segment.confidence, 4),
                "encodedSeconds": round(window.encoded_seconds, 2),
            }
            for window, segment in detection.segments
        ]
    return body


def error_body(message: str) -> dict[str, str]:
    return {"status": "error", "message": message}
