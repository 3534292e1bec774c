"""``/openapi.json``, built from the app's routes: each endpoint is decorated with what it takes
and the statuses it answers with, and each module that refuses requests declares its statuses
beside the code that sends them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Route

from service.detector.artifacts import WEIGHT_KINDS
from service.labels import LABELS
from service.web.contract import AUDIO_FORMATS, REQUIRED_FIELDS

Statuses = Mapping[int, str]
BodySchema = Callable[[tuple[str, ...]], dict[str, Any]]  # languages -> requestBody
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


@dataclass(frozen=True)
class Operation:
    summary: str
    answers: Statuses = field(default_factory=dict)  # described only
    errors: Statuses = field(default_factory=dict)  # in the contract's error shape
    success: str | None = None  # the schema of the 200 body
    body: BodySchema | None = None
    secured: bool = False

    def document(self, languages: tuple[str, ...]) -> dict[str, Any]:
        responses = {str(code): {"description": text} for code, text in self.answers.items()}
        responses |= {str(code): {"description": text, **ref("Error")} for code, text in self.errors.items()}
        if self.success is not None:
            responses["200"] = {"description": "classification", **ref(self.success)}
        operation: dict[str, Any] = {"summary": self.summary, "responses": responses}
        if self.secured:
            operation["security"] = [{"apiKey": []}]
        if self.body is not None:
            operation["requestBody"] = {"required": True, **self.body(languages)}
        return operation


def documented(operation: Operation) -> Callable[[Endpoint], Endpoint]:
    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.openapi = operation  # type: ignore[attr-defined]
        return endpoint

    return mark


def merged(*sources: Statuses) -> dict[int, str]:
    """Every status any of ``sources`` sends, with each reason given for it."""
    reasons: dict[int, list[str]] = {}
    for source in sources:
        for code, text in source.items():
            reasons.setdefault(code, []).append(text)
    return {code: "; ".join(texts) for code, texts in sorted(reasons.items())}


def openapi_document(routes: Sequence[BaseRoute], languages: tuple[str, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = getattr(getattr(route, "endpoint", None), "openapi", None)
        if isinstance(route, Route) and isinstance(operation, Operation):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                paths.setdefault(route.path, {})[method.lower()] = operation.document(languages)
    return {
        "openapi": "3.0.3",
        "info": {"title": "voicecheck", "version": "1.0.0", "description": "AI-generated vs human voice"},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": schemas(languages),
        },
    }


def language_schema(languages: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(languages), "description": "case-insensitive"}


def json_request_body(languages: tuple[str, ...]) -> dict[str, Any]:
    return ref("Request")


def schemas(languages: tuple[str, ...]) -> dict[str, Any]:
    return {
        "Request": {
            "type": "object",
            "required": list(REQUIRED_FIELDS),
            "properties": {
                "language": language_schema(languages),
                "audioFormat": {"type": "string", "enum": list(AUDIO_FORMATS)},
                "audioBase64": {
                    "type": "string",
                    "format": "byte",
                    "minLength": 4,
                    "description": "base64 of an MP3, WAV, FLAC or OGG file; anything else is a 400",
                },
            },
        },
        "Detection": {
            "type": "object",
            "required": ["status", "language", "classification", "confidenceScore", "explanation", "weights"],
            "properties": {
                "status": {"type": "string", "enum": ["success"]},
                "language": {"type": "string"},
                "classification": {"type": "string", "enum": list(LABELS)},
                "confidenceScore": {"type": "number", "minimum": 0, "maximum": 1},
                "explanation": {"type": "string"},
                "votes": {"type": "array", "items": {"type": "object"}},
                "segments": {"type": "array", "items": {"type": "object"}},
                "weights": {
                    "type": "string",
                    "enum": list(WEIGHT_KINDS),
                    "description": "addition to the contract: where the model's weights came from; "
                    "random-init verdicts are not meaningful",
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "string", "enum": ["error"]},
                "message": {"type": "string"},
            },
        },
    }
