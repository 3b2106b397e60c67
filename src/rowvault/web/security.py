"""What keeps other web sites out (issue 7): forged cross-site requests and DNS rebinding.

rowvault has no CORS middleware, so a browser never gets permission for a cross-origin request
that needs a CORS preflight. The protection rests on that, in three checks:

1. Host (every request, `HostAndOriginGuard`): the `Host` header must be one of the server's
   names - ROWVAULT_ALLOWED_HOSTS (comma-separated: `name`, `name:port`, `*.domain`, `*`), by
   default 127.0.0.1, localhost, ::1 and the `--host` given, with the port served on. A page
   of evil.example whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends
   `Host: evil.example`: 400.
2. Origin (POST, PUT, PATCH, DELETE, `HostAndOriginGuard`): an `Origin` other than the
   request's own host (the scheme is not compared: a TLS proxy may sit in front), including
   `null`, or `Sec-Fetch-Site: cross-site` (or `same-site` without a matching Origin): 403.
3. Preflight (POST, PUT, PATCH, DELETE on the API, `require_preflight`, run by the router's
   guard): the request must be one no other site can make a browser send without a preflight,
   so one of
     - the header `X-Rowvault` (any value; the page sends `X-Rowvault: 1` on every call), or
     - a Content-Type, exactly, of application/json, application/gzip, application/x-gzip or
       application/octet-stream (a raw backup upload).
   text/plain, multipart/form-data, application/x-www-form-urlencoded and no Content-Type at
   all are what a form or `fetch(url, {mode: "no-cors"})` sends from any site: those need the
   header, and so does a POST with no body (cancel, resume, undo) that does not say
   application/json. This holds with ROWVAULT_TOKEN too (checked after the token: 401 first),
   and an `Authorization` header does not count as the custom header: a browser re-sends a
   proxy's cached Basic credentials on its own, and a proxy may add the bearer token itself.

Check 3 does not depend on the browser sending Origin or Sec-Fetch-* headers; 1 and 2 stop
what 3 cannot see (a rebinding page is same-origin for the browser).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Sequence
from ipaddress import ip_address
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from ..errors import OptionError
from ..settings import Settings
from .errors import error_body

log = logging.getLogger("rowvault.web")
CUSTOM_HEADER = "x-rowvault"
PREFLIGHTED_TYPES = frozenset(
    {"application/json", "application/gzip", "application/x-gzip", "application/octet-stream"}
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$&-^_.+")


# -- 1. Host -----------------------------------------------------------------------------------


def _split_host(value: str) -> tuple[str, int | None]:
    """("name", port or None) of a Host header or an allowed-hosts entry; ValueError if bad."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1] or [::1]:8000
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(value)
    elif value.count(":") > 1:  # a bare IPv6 address: no port
        name, port = value, None
    else:
        name, sep, port_text = value.partition(":")
        port = port_text if sep else None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(value)
    if not name:
        raise ValueError(value)
    return name.rstrip("."), int(port) if port is not None else None


def _entry(name: str, port: int | None) -> str:
    shown = f"[{name}]" if ":" in name else name
    return f"{shown}:{port}" if port is not None else shown


def allowed_hosts(settings: Settings, host: str | None = None, port: int | None = None) -> list[str]:
    """ROWVAULT_ALLOWED_HOSTS, or the loopback names and `host` (with `port` when known)."""
    if settings.allowed_hosts and settings.allowed_hosts.strip():
        given = [h.strip() for h in settings.allowed_hosts.split(",") if h.strip()]
        for entry in given:
            try:
                if entry != "*" and not entry.startswith("*."):
                    _split_host(entry)
            except ValueError:
                raise OptionError(
                    f"ROWVAULT_ALLOWED_HOSTS: {entry!r} is not a name, name:port, *.domain or *"
                ) from None
        return given
    names = list(LOOPBACK_NAMES)
    if host:
        bind = host.strip("[]").lower()
        if _is_wildcard(bind):  # every interface: the names the machine answers to
            names += [socket.gethostname().lower(), socket.getfqdn().lower()]
        else:
            names.append(bind)
    return [_entry(name, port) for name in dict.fromkeys(names)]


def _is_wildcard(address: str) -> bool:
    try:
        return ip_address(address).is_unspecified
    except ValueError:
        return False


def host_allowed(host_header: str, allowed: Sequence[str]) -> bool:
    """Whether `host_header` names an entry: `name` with any port, `name:port` with that one."""
    try:
        name, port = _split_host(host_header)
    except ValueError:
        return False
    for entry in allowed:
        if entry == "*":
            return True
        if entry.startswith("*."):
            if name.endswith(entry[1:].lower()):
                return True
            continue
        want_name, want_port = _split_host(entry)
        default_port = port is None and want_port in (80, 443)  # browsers leave it out of Host
        if name == want_name and (want_port is None or want_port == port or default_port):
            return True
    return False


# -- 2. Origin ---------------------------------------------------------------------------------


def origin_problem(headers: Headers) -> str | None:
    """Why a state-changing request looks sent by another site; None if it does not."""
    host = headers.get("host", "").strip().lower()
    origin = headers.get("origin")
    same = origin is not None and _origin_host(origin) == host
    if origin is not None and not same:
        return f"the request comes from another site ({origin}); rowvault answers only its own page"
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site == "cross-site" or (fetch_site == "same-site" and not same):
        return "the request comes from another site (Sec-Fetch-Site); rowvault answers only its own page"
    return None


def _origin_host(origin: str) -> str | None:
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None  # "null" and anything else is no origin of ours
    return parts.netloc.lower()


class HostAndOriginGuard:
    """Pure ASGI middleware for checks 1 and 2 (responses stream through untouched)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = list(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        status, code, problem = 0, "", None
        if not host_allowed(headers.get("host", ""), self.allowed):
            status, code = 400, "bad_host"
            problem = "the Host header is not a name of this server; set ROWVAULT_ALLOWED_HOSTS"
        elif scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            status, code, problem = 403, "cross_site", origin_problem(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), problem)
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
            return
        await JSONResponse(error_body(status, problem, code=code), status_code=status)(scope, receive, send)


# -- 3. Preflight ------------------------------------------------------------------------------


def preflight_problem(method: str, headers: Headers) -> str | None:
    """Why another site could make a browser send this request without asking; None if not."""
    if method not in UNSAFE_METHODS or headers.get(CUSTOM_HEADER, "").strip():
        return None
    if _media_type(headers.getlist("content-type")) in PREFLIGHTED_TYPES:
        return None
    return (
        "add the header X-Rowvault: 1 (or send Content-Type: application/json): other sites can "
        "send this request from a browser, so rowvault refuses it without one"
    )


def _media_type(values: Iterable[str]) -> str | None:
    """The one media type the request declares, strictly parsed; None if none or unclear.

    Browsers read "application/json, text/plain" as text/plain: such values are refused."""
    found = list(values)
    if len(found) != 1:
        return None
    media = found[0].split(";", 1)[0].strip().lower()
    kind, slash, sub = media.partition("/")
    if not slash or not kind or not sub or not set(kind + sub) <= _TOKEN_CHARS:
        return None
    return media


def require_preflight(request: Request) -> None:
    """Check 3 for one request: 403 in the project's error shape (via HTTPException)."""
    problem = preflight_problem(request.method, request.headers)
    if problem is not None:
        raise HTTPException(status_code=403, detail=problem)


# -- installing --------------------------------------------------------------------------------


def install_security(
    app: FastAPI, settings: Settings, *, host: str | None = None, port: int | None = None
) -> list[str]:
    """Add checks 1 and 2 to `app`; returns the allowed host names (also in app.state).

    Check 3 comes with `build_router`'s own guard, wherever the router is mounted."""
    allowed = allowed_hosts(settings, host, port)
    app.add_middleware(HostAndOriginGuard, allowed=allowed)
    app.state.allowed_hosts = allowed
    return allowed
