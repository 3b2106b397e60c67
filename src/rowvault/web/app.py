"""`create_app(settings)`: the FastAPI application `rowvault serve` runs.

An existing FastAPI application can mount the same API instead:

    from rowvault.web import Service, build_router, install_error_handlers
    service = Service(load_settings())
    app.include_router(build_router(service))
    install_error_handlers(app)
    # and call service.start() / service.stop() from the app's lifespan
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..jobs import JobRunner
from ..settings import Settings, load_settings
from . import errors
from .page import mount_page
from .routes import Service, build_router


def create_app(settings: Settings | None = None, *, runner: JobRunner | None = None) -> FastAPI:
    settings = settings or load_settings()
    service = Service(settings, runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="rowvault",
        version=__version__,
        summary="Backup and restore for the data of an application's SQL database.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(build_router(service))

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness; the only route that needs no token."""
        return {"status": "ok", "version": __version__}

    mount_page(app)
    app.state.rowvault = service
    return app
