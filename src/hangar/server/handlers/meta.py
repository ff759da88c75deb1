"""Health, readiness and the OpenAPI document (generated from the route table)."""

from __future__ import annotations

from starlette.responses import JSONResponse


def health(ctx):
    return {"status": "ok"}


def ready(ctx):
    from sqlalchemy import text

    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return {"status": "ready"}


_DOC: dict = {}


def openapi(ctx):
    if not _DOC:
        from hangar.server.openapi import build

        _DOC.update(build())
    return _DOC
