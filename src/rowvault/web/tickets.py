"""Short-lived signed links for downloads.

A browser saves a file to disk, streaming, only when it navigates to a link - and a link
cannot carry an `Authorization` header. So the page asks for a ticket (with the header) and
then follows the link: the ticket signs that exact path and query for a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

TICKET_SECONDS = 60
DOWNLOADS = ("/api/backup", "/api/backup/jobs/")


class Tickets:
    def __init__(self, secret: str | None) -> None:
        self._key = (secret or secrets.token_hex(32)).encode()

    def _mac(self, target: str, expires: int) -> str:
        message = f"{expires}\n{target}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, url: str, *, now: float | None = None) -> str:
        """`url` (a path with its query) plus a `ticket` parameter valid for a minute."""
        path, query = _split(url)
        expires = int((now or time.time()) + TICKET_SECONDS)
        target = _canonical(path, query)
        ticket = f"{expires}.{self._mac(target, expires)}"
        return f"{target}{'&' if query else '?'}{urlencode({'ticket': ticket})}"

    def check(self, path: str, query: list[tuple[str, str]], *, now: float | None = None) -> bool:
        """Whether the request's `ticket` parameter signs this path and the rest of its query."""
        tickets = [v for k, v in query if k == "ticket"]
        if len(tickets) != 1 or not _is_download(path):
            return False
        expires_text, _, mac = tickets[0].partition(".")
        if not expires_text.isdigit() or int(expires_text) < (now or time.time()):
            return False
        target = _canonical(path, [(k, v) for k, v in query if k != "ticket"])
        return hmac.compare_digest(mac, self._mac(target, int(expires_text)))


def _split(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise ValueError("a ticket is for a path on this server, not a full URL")
    if not _is_download(parts.path):
        raise ValueError(f"{parts.path} is not a download")
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


def _canonical(path: str, query: list[tuple[str, str]]) -> str:
    return path + ("?" + urlencode(sorted(query)) if query else "")


def _is_download(path: str) -> bool:
    if path == DOWNLOADS[0]:
        return True
    return path.startswith(DOWNLOADS[1]) and path.endswith(("/rejects", "/errors", "/file"))
