"""Bearer-token auth: with ROWVAULT_TOKEN set, every route but /healthz needs
`Authorization: Bearer <token>`, compared in constant time."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from .tickets import Tickets


def token_checker(token: str | None, tickets: Tickets) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that lets a request through only with the token - or, for a GET
    of a download, with a ticket signed for it (see `tickets`)."""

    async def check(request: Request) -> None:
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode()):
            return
        if request.method == "GET" and tickets.check(request.url.path, request.query_params.multi_items()):
            return
        raise HTTPException(status_code=401, detail="a valid bearer token is required")

    return check
