"""The router's guard. Bearer-token auth: with ROWVAULT_TOKEN set, every route but /healthz
needs `Authorization: Bearer <token>`, compared in constant time. Then the preflight rule of
`security` (check 3), token or not: it travels with the router, so an app that mounts
`build_router` gets it too."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from .security import require_preflight
from .tickets import Tickets


def token_checker(token: str | None, tickets: Tickets) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets a request through only with the token - or, for a GET
    of a download, with a ticket signed for it (see `tickets`) - and then only a request no
    other site can make a browser send (`security.require_preflight`)."""

    async def check(request: Request) -> None:
        if token and not _authorized(request, token, tickets):
            raise HTTPException(status_code=401, detail="a valid bearer token is required")
        require_preflight(request)

    return check


def _authorized(request: Request, token: str, tickets: Tickets) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode()):
        return True
    return request.method == "GET" and tickets.check(request.url.path, request.query_params.multi_items())
