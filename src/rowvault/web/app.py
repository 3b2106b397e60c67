"""`create_app(settings)`: the FastAPI application `rowvault serve` runs.

An existing FastAPI application can mount the same API instead:

    from rowvault.web import Service, build_router, install_error_handlers
    from rowvault.web.app import install_security
    settings = load_settings()
    service = Service(settings)
    app.include_router(build_router(service))
    install_error_handlers(app)
    install_security(app, settings, host="127.0.0.1", port=8000)  # the address it is served on
    # and call service.start() / service.stop() from the app's lifespan

The router refuses by itself a state-changing request another site could have sent without
a CORS preflight (no `X-Rowvault` header, no application/json or gzip body); install_security
adds, for the whole app, the Host check (ROWVAULT_ALLOWED_HOSTS; against DNS rebinding) and
the Origin / Sec-Fetch-Site check. The rules are in `rowvault.web.security`. Do not add a CORS
middleware that allows other origins to the API: the protection rests on browsers asking first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..jobs import JobRunner
from ..jobs.service import Service
from ..settings import Settings, load_settings
from . import errors
from .page import mount_page
from .routes import build_router
from .security import install_security

__all__ = ["create_app", "install_security"]


def create_app(
    settings: Settings | None = None,
    *,
    runner: JobRunner | None = None,
    host: str | None = None,
    port: int | None = None,
) -> FastAPI:
    """The app; `host` and `port` (where it is served) set the default allowed Host names."""
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
    install_security(app, settings, host=host, port=port)
    app.include_router(build_router(service))

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness; the only route that needs no token."""
        return {"status": "ok", "version": __version__}

    mount_page(app)
    app.state.rowvault = service
    return app
