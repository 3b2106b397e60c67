"""Bearer-token auth: with ROWVAULT_TOKEN set, every route but /healthz needs
`Authorization: Bearer <token>`, compared in constant time."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request


def token_checker(token: str | None):  # type: ignore[no-untyped-def]
    """A FastAPI dependency that lets a request through only with the token."""

    async def check(request: Request) -> None:
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode()):
            return
        raise HTTPException(status_code=401, detail="a valid bearer token is required")

    return check
