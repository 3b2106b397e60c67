"""The HTTP API of DESIGN.md §3: one router, its resources each in their own module, thin
over `jobs` and the engine.

- restores.py: `POST /api/backup`, a restore of an upload, as a job
- jobroutes.py: a job by its id (progress, events, cancel, resume, undo, list, rejects, errors)
- backups.py: backup jobs and the tables a backup can hold
- downloads.py: the streamed backup `GET /api/backup`, and signed download links
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from .. import __version__
from ..jobs.service import Service
from . import backups, downloads, jobroutes, restores
from .answers import ConfigAnswer
from .auth import token_checker
from .errors import error_responses
from .tickets import Tickets

__all__ = ["Service", "build_router"]


def build_router(service: Service) -> APIRouter:
    token = service.settings.token_value
    tickets = Tickets(token)
    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(token_checker(token, tickets))],
        responses=error_responses(401, 422),
    )

    @router.get("/config", tags=["service"], responses={200: {"model": ConfigAnswer}})
    async def config() -> dict[str, Any]:
        """What the web page needs to know: polling period, limits, version."""
        s = service.settings
        return {
            "pollInterval": s.restore_poll_interval,
            "maxUploadMb": s.max_upload_mb,
            "version": __version__,
            "database": service.runner.target,
        }

    restores.install(router, service)
    jobroutes.install(router, service)
    backups.install(router, service)
    downloads.install(router, service, tickets)
    return router
