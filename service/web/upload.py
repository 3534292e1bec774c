"""``POST /api/voice-detection/file``: the same detection for a multipart/form-data upload.

Fields: ``file`` (the audio), ``language``, optional ``audioFormat`` (a label, as in the JSON
route). Same key check, rate limit, body limit, inference limiter and answer as the JSON route.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from service.web import api
from service.web.contract import AUDIO_FORMATS, DetectionRequest, audio_format, canonical_language
from service.web.errors import ClientError
from service.web.openapi import Operation, documented, language_schema

FIELDS = ("file", "language", "audioFormat")
MAX_TEXT_FIELD_BYTES = 1024  # language and audioFormat are short words


def upload_request_body(languages: tuple[str, ...]) -> dict[str, Any]:
    properties = {
        "file": {"type": "string", "format": "binary", "description": "an MP3, WAV, FLAC or OGG file"},
        "language": language_schema(languages),
        "audioFormat": {"type": "string", "enum": list(AUDIO_FORMATS)},
    }
    schema = {"type": "object", "required": ["file", "language"], "properties": properties}
    return {"content": {"multipart/form-data": {"schema": schema}}}


@documented(
    Operation(
        "Classify an uploaded voice clip (multipart/form-data)",
        errors=api.detection_errors("multipart/form-data"),
        success="Detection",
        body=upload_request_body,
        secured=True,
    )
)
async def detect_upload(request: Request) -> Response:
    return await api.detect_with(request, "multipart/form-data", parse_upload)


@asynccontextmanager
async def parse_upload(
    request: Request, chunks: AsyncGenerator[bytes, None], deadline: float
) -> AsyncIterator[DetectionRequest]:
    """The body is parsed as it arrives: the file part goes to a temporary file (in memory up to
    SPOOL_MEMORY_BYTES), which the decoder then reads from."""
    languages = request.state.runtime.settings.languages
    form = await _parse_form(request, chunks)
    try:
        unknown = sorted(set(form.keys()) - set(FIELDS))
        if unknown:
            raise ClientError(f"unknown field {unknown[0][:40]!r}; allowed: {', '.join(FIELDS)}")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ClientError("missing field 'file': send the audio as a file part (curl -F file=@clip.mp3)")
        label = _text(form, "audioFormat", required=False)
        yield DetectionRequest(
            language=canonical_language(_text(form, "language", required=True) or "", languages),
            audio_format=audio_format(label) if label is not None else "",
            audio=file.file,
        )
    finally:
        await form.close()


class _SpoolingParser(MultiPartParser):
    spool_max_size = api.SPOOL_MEMORY_BYTES


async def _parse_form(request: Request, chunks: AsyncGenerator[bytes, None]) -> FormData:
    parser = _SpoolingParser(
        request.headers,
        chunks,
        max_files=1,
        max_fields=len(FIELDS),
        max_part_size=MAX_TEXT_FIELD_BYTES,
    )
    try:
        with api.no_room_is_503():
            return await parser.parse()
    except MultiPartException as exc:
        raise ClientError(
            f"malformed multipart body ({exc.message}); send one file part 'file' and a 'language' field"
        ) from None


def _text(form: FormData, name: str, required: bool) -> str | None:
    value = form.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise ClientError(f"missing field '{name}'")
    if not isinstance(value, str):
        raise ClientError(f"field '{name}' must be text, not a file")
    return value
