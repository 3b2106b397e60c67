"""The web page (static files shipped in the package), served at `/`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount_page(app: FastAPI) -> None:
    if not (STATIC / "index.html").exists():

        @app.get("/", include_in_schema=False)
        async def docs() -> RedirectResponse:
            return RedirectResponse("/docs")

        return

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
