"""The web room: the Starlette app, its routes, middleware, limits, metrics and settings.

May import ``service.detector`` and ``service.labels``; never ``service.cli`` or ``export``.
The ``Runtime`` (service/web/runtime.py) wraps the detector with what a web service adds.
"""
