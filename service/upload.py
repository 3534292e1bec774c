"""``POST /api/voice-detection/file``: the same detection for a multipart/form-data upload.

Fields: ``file`` (the audio), ``language``, optional ``audioFormat`` (a label, as in the JSON
route). Same key check, rate limit, body limit, inference limiter and answer as the JSON route.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import api
from service.contract import AUDIO_FORMATS, canonical_language, success_body
from service.errors import ClientError

FIELDS = ("file", "language", "audioFormat")
MAX_TEXT_FIELD_BYTES = 1024  # language and audioFormat are short words


@dataclass(frozen=True)
class Upload:
    language: str
    audio_format: str | None
    audio: bytes


async def detect_upload(request: Request) -> Response:
    runtime = api._ready_runtime(request)
    api._check_api_key(request, runtime.settings.api_key)
    runtime.rate_limit.take(runtime.settings.api_key)
    _check_multipart(request)
    async with runtime.limiter.admit():
        body = await api.read_body(request, runtime.settings.max_body_bytes)
        upload = await parse_upload(request, body, runtime.settings.languages)
        del body
        async with runtime.limiter.slot():
            detection = await run_in_threadpool(runtime.analyse, upload.audio)
    return JSONResponse(success_body(upload.language, detection))


async def parse_upload(request: Request, body: bytes, languages: tuple[str, ...]) -> Upload:
    form = await _parse_form(request, body)
    try:
        unknown = sorted(set(form.keys()) - set(FIELDS))
        if unknown:
            raise ClientError(f"unknown field {unknown[0][:40]!r}; allowed: {', '.join(FIELDS)}")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ClientError("missing field 'file': send the audio as a file part (curl -F file=@clip.mp3)")
        return Upload(
            language=canonical_language(_text(form, "language", required=True) or "", languages),
            audio_format=_audio_format(_text(form, "audioFormat", required=False)),
            audio=await file.read(),
        )
    finally:
        await form.close()


async def _parse_form(request: Request, body: bytes) -> FormData:
    async def chunks() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers, chunks(), max_files=1, max_fields=len(FIELDS), max_part_size=MAX_TEXT_FIELD_BYTES
    )
    try:
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


def _audio_format(value: str | None) -> str | None:
    if value is None:
        return None
    fmt = value.strip().lower()
    if fmt not in AUDIO_FORMATS:
        raise ClientError(f"unsupported audioFormat {value[:20]!r}; allowed: {', '.join(AUDIO_FORMATS)}")
    return fmt


def _check_multipart(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise ClientError("content type must be multipart/form-data (curl -F)", 415)
