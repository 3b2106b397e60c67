"""Say in plain words what a file that is not a backup is.

A backup is JSON: after optional whitespace (and a UTF-8 byte order mark) it starts with `{`.
Anything else is refused before a parser sees it, with a message a user can act on - "this is
not a rowvault or JSON backup: it starts with 'PK..', a ZIP archive" - instead of a parser's
complaint about an invalid character."""

from __future__ import annotations

from ..errors import BackupFileError

UTF8_BOM = b"\xef\xbb\xbf"
_KINDS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "a ZIP archive (unzip it first)"),
    (0, b"PK\x05\x06", "an empty ZIP archive"),
    (0, b"\x1f\x8b", "gzip data"),
    (0, b"BZh", "bzip2 data (rowvault reads plain or gzip files)"),
    (0, b"\xfd7zXZ\x00", "xz data (rowvault reads plain or gzip files)"),
    (0, b"\x28\xb5\x2f\xfd", "zstd data (rowvault reads plain or gzip files)"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"SQLite format 3\x00", "a SQLite database (back it up with `rowvault backup --db FILE`)"),
    (0, b"PGDMP", "a pg_dump archive (restore it with pg_restore)"),
    (0, b"%PDF", "a PDF document"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (0, b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
    (257, b"ustar", "a tar archive"),
)


def looks_like_json(head: bytes) -> bool:
    """Whether the file's first bytes can start a backup (a JSON object)."""
    text = head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head
    text = text.lstrip(b" \t\r\n")
    return not text or text.startswith(b"{")


def not_a_backup(name: str, head: bytes, *, compressed: bool = False) -> BackupFileError:
    """The error for a file whose first bytes `head` cannot start a backup."""
    kind = next((label for at, magic, label in _KINDS if head[at : at + len(magic)] == magic), None)
    if kind is None:
        stripped = head.lstrip(b" \t\r\n")
        if stripped.startswith(b"["):
            kind = 'a JSON array (a backup is one object: {"metadata": ..., "table": [...]})'
        elif _mostly_text(head):
            kind = "text that is not JSON"
        else:
            kind = "binary data"
    inside = "gzip data holding " if compressed else ""
    return BackupFileError(
        name, f"this is not a rowvault or JSON backup: it starts with {_preview(head)}, {inside}{kind}"
    )


def _preview(head: bytes) -> str:
    shown = "".join(chr(b) if 32 <= b < 127 else "." for b in head.lstrip(b" \t\r\n")[:12])
    return repr(shown)


def _mostly_text(head: bytes) -> bool:
    sample = head[:256]
    if not sample:
        return True
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13) or b >= 0x80)
    return b"\x00" not in sample and printable / len(sample) > 0.95
